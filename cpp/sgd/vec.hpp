// Four-lane double vectors and the small loops built on them, for the kernel translation units.
// Everything here has internal linkage (an unnamed namespace): each instruction-set translation
// unit gets its own copy, compiled with its own flags, and no copy is shared through the linker.
//
// GCC/Clang: the vector extension (two SSE2 registers on the x86-64 baseline, one AVX register
// where enabled, two NEON registers on aarch64). MSVC and the ISO build: a struct of four doubles
// with the same lane-wise operations, so the same bits.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "portable.hpp"

#if STRUCTDROP_GNU
#define SD_INLINE inline __attribute__((always_inline))
#define SD_RESTRICT __restrict
#elif STRUCTDROP_MSVC
#define SD_INLINE __forceinline
#define SD_RESTRICT __restrict
#else
#define SD_INLINE inline
#define SD_RESTRICT
#endif

#if STRUCTDROP_MSVC
#pragma fp_contract(off)  // the default since Visual Studio 2022, stated for older versions
#endif

namespace structdrop::sgd_kernels {
namespace {

#if STRUCTDROP_GNU
// (The helpers are always inlined, so no vector crosses a function boundary: -Wpsabi is moot.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef double v4 __attribute__((vector_size(32)));
SD_INLINE v4 vsplat(double x) { return v4{x, x, x, x}; }
#else
struct v4 {
  double lane[4];
  SD_INLINE double operator[](int k) const { return lane[k]; }
};
SD_INLINE v4 operator+(v4 p, v4 q) {
  return v4{{p.lane[0] + q.lane[0], p.lane[1] + q.lane[1], p.lane[2] + q.lane[2], p.lane[3] + q.lane[3]}};
}
SD_INLINE v4 operator-(v4 p, v4 q) {
  return v4{{p.lane[0] - q.lane[0], p.lane[1] - q.lane[1], p.lane[2] - q.lane[2], p.lane[3] - q.lane[3]}};
}
SD_INLINE v4 operator*(v4 p, v4 q) {
  return v4{{p.lane[0] * q.lane[0], p.lane[1] * q.lane[1], p.lane[2] * q.lane[2], p.lane[3] * q.lane[3]}};
}
SD_INLINE v4& operator+=(v4& p, v4 q) { return p = p + q; }
SD_INLINE v4 vsplat(double x) { return v4{{x, x, x, x}}; }
#endif

SD_INLINE v4 vload(const double* p) {
  v4 r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
SD_INLINE void vstore(double* p, v4 x) { std::memcpy(p, &x, sizeof x); }
// Lanes 0..3 of lo hold entries j = 0..3 mod 8, of hi entries 4..7 mod 8: the order of combine().
SD_INLINE double vcombine(v4 lo, v4 hi) {
  const v4 s = lo + hi;
  return (s[0] + s[1]) + (s[2] + s[3]);
}

SD_INLINE double combine(const double* acc) {
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

SD_INLINE double dot(const double* SD_RESTRICT x, const double* SD_RESTRICT y, std::ptrdiff_t n) {
  double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  std::ptrdiff_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[j + k] * y[j + k];
  double tail = 0.0;
  for (; j < n; ++j) tail += x[j] * y[j];
  return combine(acc) + tail;
}

// y += alpha x
SD_INLINE void axpy(double* SD_RESTRICT y, double alpha, const double* SD_RESTRICT x, std::ptrdiff_t n) {
  for (std::ptrdiff_t j = 0; j < n; ++j) y[j] += alpha * x[j];
}

// out[j] = bit j of `bits` (0 or 1) times xs[j], four entries per table look-up.
alignas(32) constexpr double kNibble[16][4] = {
    {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {1, 1, 0, 0}, {0, 0, 1, 0}, {1, 0, 1, 0}, {0, 1, 1, 0}, {1, 1, 1, 0},
    {0, 0, 0, 1}, {1, 0, 0, 1}, {0, 1, 0, 1}, {1, 1, 0, 1}, {0, 0, 1, 1}, {1, 0, 1, 1}, {0, 1, 1, 1}, {1, 1, 1, 1}};

SD_INLINE void expand_mask(double* SD_RESTRICT out, const double* SD_RESTRICT xs, const std::uint64_t* bits,
                           std::ptrdiff_t n) {
  std::ptrdiff_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const double* t = kNibble[(bits[j >> 6] >> (j & 63)) & 15u];
    for (int k = 0; k < 4; ++k) out[j + k] = t[k] * xs[j + k];
  }
  for (; j < n; ++j) out[j] = static_cast<double>((bits[j >> 6] >> (j & 63)) & 1u) * xs[j];
}

SD_INLINE bool all_finite(const double* x, std::ptrdiff_t n) {
  double sum = 0.0;
  for (std::ptrdiff_t j = 0; j < n; ++j) sum += x[j] * 0.0;  // 0 unless some x[j] is NaN or inf
  return sum == 0.0;
}

SD_INLINE bool test_bit(const std::uint64_t* bits, std::ptrdiff_t i) { return (bits[i >> 6] >> (i & 63)) & 1u; }

}  // namespace
}  // namespace structdrop::sgd_kernels
