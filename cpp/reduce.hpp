// Streaming reductions and checks over double arrays, written so that they vectorise (SSE2 on
// x86-64) and give bit-identical results with and without SIMD: four lanes (index mod 4), each a
// plain running sum, combined as (l0 + l1) + (l2 + l3), with the remainder added to lane 0.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <limits>

#include "portable.hpp"

// SSE2 intrinsics where the compiler targets them, except in the ISO C++ (portable) build.
#if defined(__SSE2__) && !STRUCTDROP_PORTABLE
#define STRUCTDROP_REDUCE_SSE2 1
#include <emmintrin.h>
#else
#define STRUCTDROP_REDUCE_SSE2 0
#endif

namespace structdrop::reduce {

struct Lanes {
  double l0 = 0.0, l1 = 0.0, l2 = 0.0, l3 = 0.0;
  double total() const { return (l0 + l1) + (l2 + l3); }
};

// sum of f(x[i]) for i in [begin, end), and out[i] = factor * x[i] when Store.
template <bool Square, bool Store>
inline double stream(const double* x, double* out, std::size_t begin, std::size_t end, double factor) {
  Lanes lanes;
  std::size_t i = begin;
#if STRUCTDROP_REDUCE_SSE2
  __m128d a01 = _mm_setzero_pd(), a23 = _mm_setzero_pd();
  const __m128d f = _mm_set1_pd(factor);
  for (; i + 4 <= end; i += 4) {
    __m128d x01 = _mm_loadu_pd(x + i), x23 = _mm_loadu_pd(x + i + 2);
    if (Store) {
      _mm_storeu_pd(out + i, _mm_mul_pd(f, x01));
      _mm_storeu_pd(out + i + 2, _mm_mul_pd(f, x23));
    }
    if (Square) {
      x01 = _mm_mul_pd(x01, x01);
      x23 = _mm_mul_pd(x23, x23);
    }
    a01 = _mm_add_pd(a01, x01);
    a23 = _mm_add_pd(a23, x23);
  }
  alignas(16) double buf[4];
  _mm_store_pd(buf, a01);
  _mm_store_pd(buf + 2, a23);
  lanes = Lanes{buf[0], buf[1], buf[2], buf[3]};
#else
  for (; i + 4 <= end; i += 4) {
    if (Store) {
      out[i] = factor * x[i];
      out[i + 1] = factor * x[i + 1];
      out[i + 2] = factor * x[i + 2];
      out[i + 3] = factor * x[i + 3];
    }
    lanes.l0 += Square ? x[i] * x[i] : x[i];
    lanes.l1 += Square ? x[i + 1] * x[i + 1] : x[i + 1];
    lanes.l2 += Square ? x[i + 2] * x[i + 2] : x[i + 2];
    lanes.l3 += Square ? x[i + 3] * x[i + 3] : x[i + 3];
  }
#endif
  for (; i < end; ++i) {
    if (Store) out[i] = factor * x[i];
    lanes.l0 += Square ? x[i] * x[i] : x[i];
  }
  return lanes.total();
}

inline double sum_range(const double* x, std::size_t begin, std::size_t end) {
  return end > begin ? stream<false, false>(x, nullptr, begin, end, 1.0) : 0.0;
}

inline double sum_sq_range(const double* x, std::size_t begin, std::size_t end) {
  return end > begin ? stream<true, false>(x, nullptr, begin, end, 1.0) : 0.0;
}

// out[i] = factor * x[i] on [begin, end); returns the sum of x[i]^2 there, in one pass.
inline double scale_and_sum_sq(const double* x, double* out, std::size_t begin, std::size_t end, double factor) {
  return end > begin ? stream<true, true>(x, out, begin, end, factor) : 0.0;
}

// sum of x[i] on [begin, end) compensated in each of the four lanes: each addition's rounding
// error, exact by TwoSum (Knuth), goes to the lane's carry. The error stays a few eps of the sum of
// |x| whatever the length (the plain lanes lose ~n/4 eps), with one addition on each lane's
// loop-carried chain (a Kahan lane has four, which made this the slowest loop of the sorted prox).
// For sums whose rounding is amplified later (the k-support band sum, subtracted from values of
// its own size).
inline double compensated_sum_range(const double* x, std::size_t begin, std::size_t end) {
  if (end <= begin) return 0.0;
  std::size_t i = begin;
#if STRUCTDROP_REDUCE_SSE2
  __m128d s01 = _mm_setzero_pd(), s23 = _mm_setzero_pd(), c01 = _mm_setzero_pd(), c23 = _mm_setzero_pd();
  for (; i + 4 <= end; i += 4) {
    const __m128d v01 = _mm_loadu_pd(x + i), v23 = _mm_loadu_pd(x + i + 2);
    const __m128d t01 = _mm_add_pd(s01, v01), t23 = _mm_add_pd(s23, v23);
    const __m128d z01 = _mm_sub_pd(t01, s01), z23 = _mm_sub_pd(t23, s23);
    c01 = _mm_add_pd(c01, _mm_add_pd(_mm_sub_pd(s01, _mm_sub_pd(t01, z01)), _mm_sub_pd(v01, z01)));
    c23 = _mm_add_pd(c23, _mm_add_pd(_mm_sub_pd(s23, _mm_sub_pd(t23, z23)), _mm_sub_pd(v23, z23)));
    s01 = t01;
    s23 = t23;
  }
  alignas(16) double sums[4], carries[4];
  _mm_store_pd(sums, s01);
  _mm_store_pd(sums + 2, s23);
  _mm_store_pd(carries, c01);
  _mm_store_pd(carries + 2, c23);
#else
  double sums[4] = {0.0, 0.0, 0.0, 0.0}, carries[4] = {0.0, 0.0, 0.0, 0.0};
  for (; i + 4 <= end; i += 4) {
    for (int l = 0; l < 4; ++l) {
      const double v = x[i + l], t = sums[l] + v, z = t - sums[l];
      carries[l] += (sums[l] - (t - z)) + (v - z);
      sums[l] = t;
    }
  }
#endif
  double total = 0.0, carry = 0.0;
  auto add = [&](double v) {  // the same over the lanes, their carries and the remainder
    const double t = total + v, z = t - total;
    carry += (total - (t - z)) + (v - z);
    total = t;
  };
  for (int l = 0; l < 4; ++l) add(sums[l]);
  for (int l = 0; l < 4; ++l) add(carries[l]);
  for (; i < end; ++i) add(x[i]);
  return total + carry;
}

// True when every entry is finite, >= 0, and the array is non-increasing. One branch-free pass.
inline bool is_descending_nonnegative_finite(const double* v, std::size_t n) {
  if (n == 0) return true;
  const double largest = std::numeric_limits<double>::max();
  unsigned bad = static_cast<unsigned>(!(v[0] >= 0.0)) | static_cast<unsigned>(v[0] > largest);
  std::size_t i = 1;
#if STRUCTDROP_REDUCE_SSE2
  const __m128d zero = _mm_setzero_pd(), big = _mm_set1_pd(largest);
  __m128d flags = _mm_setzero_pd();
  for (; i + 2 <= n; i += 2) {
    const __m128d x = _mm_loadu_pd(v + i), previous = _mm_loadu_pd(v + i - 1);
    flags = _mm_or_pd(flags, _mm_cmpnge_pd(x, zero));     // negative or NaN
    flags = _mm_or_pd(flags, _mm_cmpgt_pd(x, big));       // +inf
    flags = _mm_or_pd(flags, _mm_cmpgt_pd(x, previous));  // an ascent
  }
  bad |= static_cast<unsigned>(_mm_movemask_pd(flags));
#endif
  for (; i < n; ++i) {
    bad |= static_cast<unsigned>(!(v[i] >= 0.0)) | static_cast<unsigned>(v[i] > largest) |
           static_cast<unsigned>(v[i] > v[i - 1]);
  }
  return bad == 0;
}

}  // namespace structdrop::reduce
