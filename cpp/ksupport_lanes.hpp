// Two-lane double vectors for the k-support selection's passes (cpp/ksupport_partition.hpp).
// Everything here has internal linkage (an unnamed namespace), as in cpp/sgd/vec.hpp.
//
// GCC/Clang: the vector extension (one SSE2 register on the x86-64 baseline, one NEON register on
// aarch64). MSVC and the ISO build (STRUCTDROP_PORTABLE): a struct of two doubles with the same
// lane-wise operations. Every operation is one correctly rounded IEEE operation per lane, or a bit
// operation on the lanes' bits (comparison masks are all ones or all zeros), so the two routes give
// the same bits; the passes built on them fix the order of every sum (per lane, lanes combined in
// a fixed order), so the prox is the same on every build and architecture.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "portable.hpp"

#if STRUCTDROP_GNU
#define SD_LANES_INLINE inline __attribute__((always_inline))
#elif STRUCTDROP_MSVC
#define SD_LANES_INLINE __forceinline
#else
#define SD_LANES_INLINE inline
#endif

#if STRUCTDROP_MSVC
#pragma fp_contract(off)  // the default since Visual Studio 2022, stated for older versions
#endif

namespace structdrop::lanes {
namespace {

constexpr int kLanes = 2;

#if STRUCTDROP_GNU
// (The helpers are always inlined, so no vector crosses a function boundary: -Wpsabi is moot.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef double d2 __attribute__((vector_size(16)));
// What a comparison of two d2 gives: a lane of all ones where it holds, zeros elsewhere.
using mask2 = decltype(d2{} < d2{});

SD_LANES_INLINE d2 make(double a, double b) { return d2{a, b}; }
SD_LANES_INLINE mask2 bits_of(d2 v) { return reinterpret_cast<mask2>(v); }
SD_LANES_INLINE d2 from_bits(mask2 m) { return reinterpret_cast<d2>(m); }
#else
struct d2 {
  double lane[2];
  SD_LANES_INLINE double operator[](int k) const { return lane[k]; }
};
struct mask2 {
  std::int64_t lane[2];
  SD_LANES_INLINE std::int64_t operator[](int k) const { return lane[k]; }
};
SD_LANES_INLINE d2 operator+(d2 p, d2 q) { return d2{{p.lane[0] + q.lane[0], p.lane[1] + q.lane[1]}}; }
SD_LANES_INLINE d2 operator-(d2 p, d2 q) { return d2{{p.lane[0] - q.lane[0], p.lane[1] - q.lane[1]}}; }
SD_LANES_INLINE d2 operator*(d2 p, d2 q) { return d2{{p.lane[0] * q.lane[0], p.lane[1] * q.lane[1]}}; }
SD_LANES_INLINE d2& operator+=(d2& p, d2 q) { return p = p + q; }
SD_LANES_INLINE mask2 lanes_where(bool a, bool b) { return mask2{{-std::int64_t{a}, -std::int64_t{b}}}; }
SD_LANES_INLINE mask2 operator<(d2 p, d2 q) { return lanes_where(p.lane[0] < q.lane[0], p.lane[1] < q.lane[1]); }
SD_LANES_INLINE mask2 operator>(d2 p, d2 q) { return lanes_where(p.lane[0] > q.lane[0], p.lane[1] > q.lane[1]); }
SD_LANES_INLINE mask2 operator<=(d2 p, d2 q) { return lanes_where(p.lane[0] <= q.lane[0], p.lane[1] <= q.lane[1]); }
SD_LANES_INLINE mask2 operator>=(d2 p, d2 q) { return lanes_where(p.lane[0] >= q.lane[0], p.lane[1] >= q.lane[1]); }
SD_LANES_INLINE mask2 operator&(mask2 p, mask2 q) { return mask2{{p.lane[0] & q.lane[0], p.lane[1] & q.lane[1]}}; }
SD_LANES_INLINE mask2 operator|(mask2 p, mask2 q) { return mask2{{p.lane[0] | q.lane[0], p.lane[1] | q.lane[1]}}; }
SD_LANES_INLINE mask2 operator~(mask2 p) { return mask2{{~p.lane[0], ~p.lane[1]}}; }
SD_LANES_INLINE mask2 operator-(mask2 p, mask2 q) { return mask2{{p.lane[0] - q.lane[0], p.lane[1] - q.lane[1]}}; }
SD_LANES_INLINE mask2& operator|=(mask2& p, mask2 q) { return p = p | q; }
SD_LANES_INLINE mask2& operator-=(mask2& p, mask2 q) { return p = p - q; }
SD_LANES_INLINE d2 make(double a, double b) { return d2{{a, b}}; }
SD_LANES_INLINE mask2 bits_of(d2 v) {
  mask2 m;
  std::memcpy(&m, &v, sizeof m);
  return m;
}
SD_LANES_INLINE d2 from_bits(mask2 m) {
  d2 v;
  std::memcpy(&v, &m, sizeof v);
  return v;
}
#endif

SD_LANES_INLINE d2 splat(double x) { return make(x, x); }
SD_LANES_INLINE d2 load(const double* p) {
  d2 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SD_LANES_INLINE d2 load(const float* p) {  // widened exactly
  return make(static_cast<double>(p[0]), static_cast<double>(p[1]));
}
// Lane k of v rounded to T (a float rounds once, as static_cast does).
template <class T>
SD_LANES_INLINE void store(T* p, d2 v) {
  p[0] = static_cast<T>(v[0]);
  p[1] = static_cast<T>(v[1]);
}
SD_LANES_INLINE mask2 no_lanes() { return bits_of(splat(0.0)); }
// v where m holds, +0.0 elsewhere.
SD_LANES_INLINE d2 keep(mask2 m, d2 v) { return from_bits(m & bits_of(v)); }
// a where m holds, b elsewhere.
SD_LANES_INLINE d2 choose(mask2 m, d2 a, d2 b) { return from_bits((m & bits_of(a)) | (~m & bits_of(b))); }
SD_LANES_INLINE d2 magnitude(d2 v) { return from_bits(bits_of(v) & ~bits_of(splat(-0.0))); }
// The sign bits of v where m holds, ored into a (a >= 0).
SD_LANES_INLINE d2 with_sign(d2 a, mask2 m, d2 v) {
  return from_bits(bits_of(a) | (m & bits_of(v) & bits_of(splat(-0.0))));
}
SD_LANES_INLINE bool holds(mask2 m, int k) { return m[k] != 0; }
// Per-lane counts are kept in a mask2: `counts -= m` adds one where m holds (a true lane is -1).
SD_LANES_INLINE std::size_t count(mask2 counts) { return static_cast<std::size_t>(counts[0] + counts[1]); }
// clip(t, 0, 1) as std::min(1.0, std::max(0.0, t)) computes it (NaN gives 0).
SD_LANES_INLINE d2 clip01(d2 t) {
  const d2 zero = splat(0.0), one = splat(1.0);
  const d2 c = keep(zero < t, t);
  return choose(c < one, c, one);
}

}  // namespace
}  // namespace structdrop::lanes
