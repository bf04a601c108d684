// Checks the routes of cpp/portable.hpp that the build selected (ISO C++ with
// -DSTRUCTDROP_PORTABLE=1, else the compiler's) against references computed differently here:
// the product by 16-bit limbs (long multiplication, as on paper), and trailing zeros by shifting.
// Run by .ci/compile-checks for both routes; exits non-zero with a message on the first mismatch.
#include <cstdint>
#include <cstdio>

#include "portable.hpp"

namespace {

std::uint64_t reference_mulhi(std::uint64_t a, std::uint64_t b) {
  std::uint32_t limb[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 16-bit limbs of the 128-bit product
  for (int i = 0; i < 4; ++i) {
    std::uint32_t carry = 0;
    for (int j = 0; j < 4; ++j) {
      const std::uint32_t x = static_cast<std::uint32_t>((a >> (16 * i)) & 0xFFFFu);
      const std::uint32_t y = static_cast<std::uint32_t>((b >> (16 * j)) & 0xFFFFu);
      const std::uint64_t t = static_cast<std::uint64_t>(x) * y + limb[i + j] + carry;
      limb[i + j] = static_cast<std::uint32_t>(t & 0xFFFFu);
      carry = static_cast<std::uint32_t>(t >> 16);
    }
    for (int k = i + 4; carry != 0 && k < 8; ++k) {
      const std::uint32_t t = limb[k] + carry;
      limb[k] = t & 0xFFFFu;
      carry = t >> 16;
    }
  }
  std::uint64_t hi = 0;
  for (int k = 7; k >= 4; --k) hi = (hi << 16) | limb[k];
  return hi;
}

int reference_ctz(std::uint64_t x) {
  int n = 0;
  while ((x & 1u) == 0) {
    x >>= 1;
    ++n;
  }
  return n;
}

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

}  // namespace

int main() {
  using namespace structdrop::portable;
  const std::uint64_t edge[] = {0,
                                1,
                                2,
                                3,
                                0xFFFFFFFFu,
                                0x100000000u,
                                0xFFFFFFFFFFFFFFFFu,
                                0x8000000000000000u,
                                0x7FFFFFFFFFFFFFFFu,
                                0xFFFFFFFF00000000u};
  for (std::uint64_t a : edge)
    for (std::uint64_t b : edge)
      if (mulhi64(a, b) != reference_mulhi(a, b)) {
        std::printf("mulhi64(%llx, %llx) wrong\n", static_cast<unsigned long long>(a),
                    static_cast<unsigned long long>(b));
        return 1;
      }
  std::uint64_t state = 42;
  for (int k = 0; k < 200000; ++k) {
    const std::uint64_t a = splitmix(state), b = splitmix(state) >> (k % 64);
    if (mulhi64(a, b) != reference_mulhi(a, b) || mullo64(a, b) != a * b) {
      std::printf("mulhi64/mullo64 wrong at draw %d\n", k);
      return 1;
    }
    const std::uint64_t x = a | (std::uint64_t{1} << (k % 64));
    if (ctz64(x) != reference_ctz(x)) {
      std::printf("ctz64(%llx) wrong\n", static_cast<unsigned long long>(x));
      return 1;
    }
  }
  for (int k = 0; k < 64; ++k)
    if (ctz64(std::uint64_t{1} << k) != k) {
      std::printf("ctz64(2^%d) wrong\n", k);
      return 1;
    }
  const double probe[4] = {0, 0, 0, 0};
  prefetch(probe);  // a hint: must compile and do nothing observable
  const CpuFeatures cpu = detect_cpu_features();
  std::printf("portable.hpp (%s routes): mulhi64, mullo64, ctz64 agree with the references; avx2=%d avx512=%d\n",
              STRUCTDROP_PORTABLE ? "ISO C++" : "compiler", cpu.avx2 ? 1 : 0, cpu.avx512 ? 1 : 0);
  return (STRUCTDROP_PORTABLE && (cpu.avx2 || cpu.avx512)) ? 1 : 0;
}
