// The prox (cpp/ksupport_select.hpp: the selection, and the sweep for sorted input) gives the same bits on every build
// and architecture: a digest (FNV-1a) of its values and solutions on inputs made from integers by correctly rounded
// operations only, against the digest stored here from the default x86-64 build. Run by .ci/compile-checks with the
// compiler's routes, the ISO C++ routes
// (-DSTRUCTDROP_PORTABLE=1), -march=native, and cross-compiled for aarch64 under qemu-user;
// exits non-zero on a mismatch. A deliberate change to how the prox rounds rewrites kStored.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "ksupport_select.hpp"

namespace {

constexpr std::uint64_t kStored = 0x991e7dcece246e80ULL;

std::uint64_t state = 12345;
std::uint64_t next() {  // SplitMix64
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double uniform() { return static_cast<double>(next() >> 11) * 0x1p-53; }  // exact

std::uint64_t digest = 1469598103934665603ULL;
void feed(const void* p, std::size_t bytes) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < bytes; ++i) digest = (digest ^ c[i]) * 1099511628211ULL;
}
void feed(const structdrop::ProxSolution& s) {
  feed(&s.rho, sizeof s.rho);
  feed(&s.rank, sizeof s.rank);
  feed(&s.objective, sizeof s.objective);
}

}  // namespace

int main() {
  structdrop::SelectWorkspace ws;
  // odd sizes (units are taken two at a time), several selection rounds at 40001; magnitudes
  // uniform, heavy-tailed (1/u) and crowded near zero (u^2), with random signs; float64 and float32,
  // and the magnitudes sorted (the sweep, with the fixed-order reductions of cpp/reduce.hpp)
  for (const std::size_t n : {257u, 1001u, 40001u}) {
    for (int family = 0; family < 3; ++family) {
      std::vector<double> x(n), out(n);
      std::vector<float> xf(n), outf(n);
      for (std::size_t i = 0; i < n; ++i) {
        const double u = uniform();
        const double m = family == 0 ? u : family == 1 ? 1.0 / (u + 0x1p-30) : u * u;
        x[i] = (next() & 1) ? m : -m;
        xf[i] = static_cast<float>(x[i]);
      }
      std::vector<double> sorted(n);  // |x| descending: the sweep
      for (std::size_t i = 0; i < n; ++i) sorted[i] = x[i] < 0.0 ? -x[i] : x[i];
      std::sort(sorted.begin(), sorted.end(), [](double a, double b) { return a > b; });
      for (const std::int64_t r : {std::int64_t{1}, std::int64_t{50}, static_cast<std::int64_t>(n / 20)}) {
        for (const double beta : {0.01, 1.0, 100.0}) {
          feed(structdrop::prox_ksupport_sq_select(x.data(), n, r, beta, out.data(), ws));
          feed(out.data(), n * sizeof(double));
          feed(structdrop::prox_ksupport_sq_select(xf.data(), n, r, beta, outf.data(), ws));
          feed(outf.data(), n * sizeof(float));
          feed(structdrop::prox_ksupport_sq_select(sorted.data(), n, r, beta, out.data(), ws));
          feed(out.data(), n * sizeof(double));
        }
      }
    }
  }
  if (digest != kStored) {
    std::printf("prox digest %016llx, stored %016llx: the prox's bits changed on this build\n",
                static_cast<unsigned long long>(digest), static_cast<unsigned long long>(kStored));
    return 1;
  }
  std::printf("prox: the stored bits (%016llx)\n", static_cast<unsigned long long>(digest));
  return 0;
}
