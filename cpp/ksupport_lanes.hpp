// Two-lane double vectors for the k-support prox: the selection's passes
// (cpp/ksupport_partition.hpp) and the sweep's band (cpp/ksupport.cpp). Everything here has
// internal linkage (an unnamed namespace), as in cpp/sgd/vec.hpp.
//
// Three routes with the same operations: SSE2 intrinsics (GCC/Clang on x86-64), the GCC/Clang
// vector extension elsewhere (one NEON register on aarch64), and a struct of two doubles for MSVC
// and the ISO build (STRUCTDROP_PORTABLE). Every operation is one correctly rounded IEEE operation
// per lane, or a bit operation on the lanes' bits (a comparison gives a lane of all ones where it
// holds, zeros elsewhere), so the routes give the same bits; the passes built on them fix the
// order of every sum (per lane, lanes combined in a fixed order), so the prox is the same on every
// build and architecture.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "portable.hpp"

#if STRUCTDROP_GNU && defined(__SSE2__)
#define STRUCTDROP_LANES_SSE2 1
#include <emmintrin.h>
#else
#define STRUCTDROP_LANES_SSE2 0
#endif

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
SD_LANES_INLINE d2 make(double a, double b) { return d2{a, b}; }
#else
struct d2 {
  double lane[2];
  SD_LANES_INLINE double operator[](int k) const { return lane[k]; }
};
SD_LANES_INLINE d2 make(double a, double b) { return d2{{a, b}}; }
SD_LANES_INLINE d2 operator+(d2 p, d2 q) { return make(p.lane[0] + q.lane[0], p.lane[1] + q.lane[1]); }
SD_LANES_INLINE d2 operator-(d2 p, d2 q) { return make(p.lane[0] - q.lane[0], p.lane[1] - q.lane[1]); }
SD_LANES_INLINE d2 operator*(d2 p, d2 q) { return make(p.lane[0] * q.lane[0], p.lane[1] * q.lane[1]); }
SD_LANES_INLINE d2& operator+=(d2& p, d2 q) { return p = p + q; }
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

// Masks (mask2: a lane of all ones or zeros), counts per lane (count2), and the operations on
// the bits of lanes.
#if STRUCTDROP_LANES_SSE2
using mask2 = __m128d;
using count2 = __m128i;
SD_LANES_INLINE mask2 lt(d2 a, d2 b) { return _mm_cmplt_pd(a, b); }
SD_LANES_INLINE mask2 gt(d2 a, d2 b) { return _mm_cmpgt_pd(a, b); }
SD_LANES_INLINE mask2 le(d2 a, d2 b) { return _mm_cmple_pd(a, b); }
SD_LANES_INLINE mask2 ge(d2 a, d2 b) { return _mm_cmpge_pd(a, b); }
SD_LANES_INLINE mask2 not_le(d2 a, d2 b) { return _mm_cmpnle_pd(a, b); }  // true for NaN
SD_LANES_INLINE mask2 both(mask2 p, mask2 q) { return _mm_and_pd(p, q); }
SD_LANES_INLINE mask2 either(mask2 p, mask2 q) { return _mm_or_pd(p, q); }
SD_LANES_INLINE mask2 but_not(mask2 p, mask2 q) { return _mm_andnot_pd(q, p); }  // p and not q
SD_LANES_INLINE mask2 no_lanes() { return _mm_setzero_pd(); }
SD_LANES_INLINE mask2 all_lanes() { return _mm_castsi128_pd(_mm_set1_epi32(-1)); }
SD_LANES_INLINE mask2 first_lane() { return _mm_castsi128_pd(_mm_set_epi32(0, 0, -1, -1)); }
SD_LANES_INLINE d2 keep(mask2 m, d2 v) { return _mm_and_pd(m, v); }
SD_LANES_INLINE d2 larger(d2 a, d2 b) { return _mm_max_pd(a, b); }  // a > b ? a : b, as below
SD_LANES_INLINE d2 bit_and(d2 a, d2 b) { return _mm_and_pd(a, b); }
SD_LANES_INLINE d2 bit_or(d2 a, d2 b) { return _mm_or_pd(a, b); }
SD_LANES_INLINE d2 bit_andnot(d2 a, d2 b) { return _mm_andnot_pd(b, a); }  // a and not b
SD_LANES_INLINE unsigned lane_bits(mask2 m) { return static_cast<unsigned>(_mm_movemask_pd(m)); }
SD_LANES_INLINE count2 no_counts() { return _mm_setzero_si128(); }
SD_LANES_INLINE void tally(count2& c, mask2 m) { c = _mm_sub_epi64(c, _mm_castpd_si128(m)); }  // a true lane is -1
SD_LANES_INLINE std::size_t total(count2 c) {
  std::uint64_t lane[2];
  std::memcpy(lane, &c, sizeof lane);
  return static_cast<std::size_t>(lane[0] + lane[1]);
}
#else
#if STRUCTDROP_GNU
using mask2 = decltype(d2{} < d2{});
SD_LANES_INLINE mask2 lt(d2 a, d2 b) { return a < b; }
SD_LANES_INLINE mask2 gt(d2 a, d2 b) { return a > b; }
SD_LANES_INLINE mask2 le(d2 a, d2 b) { return a <= b; }
SD_LANES_INLINE mask2 ge(d2 a, d2 b) { return a >= b; }
SD_LANES_INLINE mask2 not_le(d2 a, d2 b) { return ~(a <= b); }  // true for NaN
SD_LANES_INLINE mask2 make_mask(bool a, bool b) { return mask2{-std::int64_t{a}, -std::int64_t{b}}; }
#else
struct mask2 {
  std::int64_t lane[2];
  SD_LANES_INLINE std::int64_t operator[](int k) const { return lane[k]; }
};
SD_LANES_INLINE mask2 make_mask(bool a, bool b) { return mask2{{-std::int64_t{a}, -std::int64_t{b}}}; }
SD_LANES_INLINE mask2 operator&(mask2 p, mask2 q) { return mask2{{p.lane[0] & q.lane[0], p.lane[1] & q.lane[1]}}; }
SD_LANES_INLINE mask2 operator|(mask2 p, mask2 q) { return mask2{{p.lane[0] | q.lane[0], p.lane[1] | q.lane[1]}}; }
SD_LANES_INLINE mask2 operator~(mask2 p) { return mask2{{~p.lane[0], ~p.lane[1]}}; }
SD_LANES_INLINE mask2 lt(d2 a, d2 b) { return make_mask(a[0] < b[0], a[1] < b[1]); }
SD_LANES_INLINE mask2 gt(d2 a, d2 b) { return make_mask(a[0] > b[0], a[1] > b[1]); }
SD_LANES_INLINE mask2 le(d2 a, d2 b) { return make_mask(a[0] <= b[0], a[1] <= b[1]); }
SD_LANES_INLINE mask2 ge(d2 a, d2 b) { return make_mask(a[0] >= b[0], a[1] >= b[1]); }
SD_LANES_INLINE mask2 not_le(d2 a, d2 b) { return make_mask(!(a[0] <= b[0]), !(a[1] <= b[1])); }
#endif
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
SD_LANES_INLINE mask2 both(mask2 p, mask2 q) { return p & q; }
SD_LANES_INLINE mask2 either(mask2 p, mask2 q) { return p | q; }
SD_LANES_INLINE mask2 but_not(mask2 p, mask2 q) { return p & ~q; }
SD_LANES_INLINE mask2 no_lanes() { return make_mask(false, false); }
SD_LANES_INLINE mask2 all_lanes() { return make_mask(true, true); }
SD_LANES_INLINE mask2 first_lane() { return make_mask(true, false); }
// v where m holds, +0.0 elsewhere.
SD_LANES_INLINE d2 keep(mask2 m, d2 v) { return from_bits(m & bits_of(v)); }
// a where m holds, b elsewhere.
SD_LANES_INLINE d2 choose(mask2 m, d2 a, d2 b) { return from_bits((m & bits_of(a)) | (~m & bits_of(b))); }
// max(a, b) lane-wise as a > b ? a : b (the order matters only for NaN).
SD_LANES_INLINE d2 larger(d2 a, d2 b) { return choose(gt(a, b), a, b); }
SD_LANES_INLINE d2 bit_and(d2 a, d2 b) { return from_bits(bits_of(a) & bits_of(b)); }
SD_LANES_INLINE d2 bit_or(d2 a, d2 b) { return from_bits(bits_of(a) | bits_of(b)); }
SD_LANES_INLINE d2 bit_andnot(d2 a, d2 b) { return from_bits(bits_of(a) & ~bits_of(b)); }
// Bit k set where lane k of m holds.
SD_LANES_INLINE unsigned lane_bits(mask2 m) {
  return static_cast<unsigned>(m[0] & 1) | (static_cast<unsigned>(m[1] & 1) << 1);
}
struct count2 {
  std::size_t lane[2];
};
SD_LANES_INLINE count2 no_counts() { return count2{{0, 0}}; }
SD_LANES_INLINE void tally(count2& c, mask2 m) {
  c.lane[0] += static_cast<std::size_t>(m[0] & 1);
  c.lane[1] += static_cast<std::size_t>(m[1] & 1);
}
SD_LANES_INLINE std::size_t total(count2 c) { return c.lane[0] + c.lane[1]; }
#endif

SD_LANES_INLINE d2 magnitude(d2 v) { return bit_andnot(v, splat(-0.0)); }
// copysign(a, v) + 0.0 for a >= 0: v's sign where a > 0, +0.0 where a is 0.
SD_LANES_INLINE d2 with_sign(d2 a, d2 v) { return bit_or(a, bit_and(v, splat(-0.0))) + splat(0.0); }

}  // namespace
}  // namespace structdrop::lanes
