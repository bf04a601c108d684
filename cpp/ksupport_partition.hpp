// The passes of the k-support selection (cpp/ksupport_select.cpp) over all n units: the partition
// of the units against a bracket of the threshold (with the input's scan on the way) and the
// output pass. One lane-generic code path (cpp/ksupport_lanes.hpp) for every build: the units are
// taken two at a time, every sum is kept per lane (index mod 2; an odd last unit goes to lane 0
// with a zero in lane 1) and the lanes are combined in a fixed order, so the default, the portable
// (ISO C++) and the aarch64 builds give the same bits.
// Internal linkage (an unnamed namespace): included by cpp/ksupport_select.cpp only.
// Pure C++: no Python types.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "ksupport_lanes.hpp"
#include "ksupport_rounding.hpp"
#include "ksupport_select.hpp"

namespace structdrop {
namespace {

using lanes::d2;
using lanes::mask2;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNormal = std::numeric_limits<double>::min();  // smallest normal double

// A power of two near the largest magnitude: dividing by it (multiplying by inv) is exact and
// puts the largest scaled magnitude in [1, 2).
struct Scale {
  double scale = 1.0, inv = 1.0;
};

// Scaled magnitudes read straight from the input (first round and output pass) or from a buffer;
// lanes(i) gives units i and i + 1 with the same bits as operator[].
// Scaled = false: inv is 1 (the unscaled first round), and the multiplication is left out.
template <class T, bool Scaled = true>
struct InputSource {
  const T* x;
  std::size_t n;
  double inv;
  std::size_t size() const { return n; }
  double operator[](std::size_t i) const {
    const double m = std::fabs(static_cast<double>(x[i]));
    return Scaled ? m * inv : m;
  }
  d2 lanes(std::size_t i) const {
    const d2 m = lanes::magnitude(lanes::load(x + i));
    if constexpr (Scaled) return m * lanes::splat(inv);
    return m;
  }
};

struct BufferSource {
  const double* v;
  std::size_t n;
  std::size_t size() const { return n; }
  double operator[](std::size_t i) const { return v[i]; }
  d2 lanes(std::size_t i) const { return lanes::load(v + i); }
};

// A bracket end or a pivot: one unit's breakpoint.
using End = SelectBreakpoint;

struct Problem {
  double r;      // the support size as a double
  double beta;   // > 0
  double beta1;  // 1 + beta
  double up;     // (1 + beta)/beta
  double down;   // beta/(1 + beta)
  double floor;  // (1 + beta)/DBL_MAX: below it (1 + beta)/m overflows; such a unit is taken as zero
  End start(double m) const { return {beta / m, false, m}; }
  End saturation(double m) const { return {beta1 / m, true, m}; }
};

// Comparing a unit's breakpoints beta/m and (1 + beta)/m with the bracket ends, as comparisons of
// m with four magnitudes (no division per unit). When an end is the pivot unit's own breakpoint of
// the same kind, the threshold is exactly that unit's m: the pivot leaves the bracket, so every
// round makes progress.
struct Thresholds {
  double started;    // m >= started: beta/m <= lo
  double saturated;  // m >= saturated: (1 + beta)/m <= lo
  double zero;       // m <= zero: beta/m >= hi
  double unsat;      // m <= unsat: (1 + beta)/m >= hi
};

// A compensated (Neumaier) sum of non-negative terms: the band values m_i - c cancel, so the
// relative error of sum m over the band reaches the values multiplied by m_i/a_i; compensated,
// it stays at a few eps whatever n is.
struct CompensatedSum {
  double sum = 0.0, carry = 0.0;
  void add(double v) {
    const double t = sum + v;
    carry += sum >= v ? (sum - t) + v : (v - t) + sum;
    sum = t;
  }
  void add(const CompensatedSum& other) {
    add(other.sum);
    carry += other.carry;
  }
  double value() const { return sum + carry; }
};

// The same per lane: the rounding error of each addition by TwoSum (Knuth), branch-free and equal
// to the one CompensatedSum::add picks (both are exact), with one addition on the sum's chain (a
// Kahan sum has four). combine() adds the lanes in a fixed order: lane 0's sum, lane 1's sum,
// then both carries.
struct CompensatedLanes {
  d2 sum = lanes::splat(0.0), carry = lanes::splat(0.0);
  void add(d2 v) {
    const d2 t = sum + v;
    const d2 z = t - sum;
    carry += (sum - (t - z)) + (v - z);
    sum = t;
  }
  CompensatedSum combine() const {
    CompensatedSum s;
    s.add(sum[0]);
    s.add(sum[1]);
    s.carry += carry[0] + carry[1];
    return s;
  }
};

// The state of the selection: the root tau lies in the bracket [lo, hi] with S(lo) <= r < S(hi)
// (no lo: 0; no hi: +inf; a root exactly on a breakpoint is lo, so a unit that saturates there is
// in the head, where its value m/(1 + beta) carries no cancellation, as in the sorted sweep), and
// every unit outside the active set is resolved on (lo, hi): saturated (t = 1), zero, or linear
// (t = m tau - beta throughout), with its contribution carried in these sums.
struct Bracket {
  bool has_lo = false, has_hi = false;
  End lo{0.0, false, 0.0}, hi{kInf, false, 0.0};
  std::size_t saturated = 0, linear = 0;
  CompensatedSum linear_sum;  // sum of m over the linear units

  double resolved_weight(double tau, double beta) const {
    return static_cast<double>(saturated) + (linear_sum.value() * tau - beta * static_cast<double>(linear));
  }
  Thresholds thresholds(const Problem& pb) const {
    Thresholds t{kInf, kInf, 0.0, 0.0};
    if (has_lo) {
      t.started = lo.saturates ? lo.m * pb.down : lo.m;
      t.saturated = lo.saturates ? lo.m : lo.m * pb.up;
    }
    if (has_hi) {
      t.zero = hi.saturates ? hi.m * pb.down : hi.m;
      t.unsat = hi.saturates ? hi.m : hi.m * pb.up;
    }
    // Units whose breakpoints are not both finite doubles (m < (1 + beta)/DBL_MAX after the
    // rescaling, i.e. below ~1e-308 (1 + beta) times the largest magnitude) are zero: no pivot is
    // ever infinite, and their exact a_i are below that bound.
    t.zero = std::max(t.zero, pb.floor);
    t.unsat = std::max(t.unsat, t.zero);  // a zero unit's saturation is beyond hi as well
    return t;
  }
};

enum class Class { kSaturated, kZero, kLinear, kActive };

// Where a unit stands for every tau strictly inside the bracket (in this order of priority).
inline Class classify(double m, const Thresholds& t) {
  if (m >= t.saturated) return Class::kSaturated;
  if (m <= t.zero) return Class::kZero;
  if (m >= t.started && m <= t.unsat) return Class::kLinear;
  return Class::kActive;
}
// Which of an active unit's breakpoints lie strictly inside the bracket.
inline bool start_inside(double m, const Thresholds& t) { return m > t.zero && m < t.started; }
inline bool saturation_inside(double m, const Thresholds& t) { return m > t.unsat && m < t.saturated; }

// t = clip(m tau - beta, 0, 1). Only the direction of a round depends on it (S(pivot) against r),
// so it may differ from the threshold classification by rounding.
inline double weight(double m, double tau, double beta) { return std::min(1.0, std::max(0.0, m * tau - beta)); }

// The scan (finite, largest, non-zeros) when the first round takes it on the way.
struct ScanAcc {
  bool finite = true;
  double max = 0.0;
  std::size_t positive = 0;
};

// Resolves every unit of `src` on the bracket into br's sums, or copies it to `next` (the new
// active set), and adds the scan into *track when Track. Branch-free per unit: the store is
// unconditional and the write position advances only for active units (chunks keep `next` large
// enough). An odd last unit is taken with a zero beside it: a zero is resolved (zero class), adds
// 0 to every sum and is never written.
template <bool Track, class Source>
void partition_pass(const Source& source, Bracket& br, const Problem& pb, std::vector<double>& next, ScanAcc* track) {
  constexpr std::size_t kChunk = 4096;  // even: only the last chunk can end on an odd unit
  const Source src = source;            // a local copy: the stores to `next` cannot alias it
  const std::size_t k = src.size();
  const Thresholds t = br.thresholds(pb);
  const d2 t_sat = lanes::splat(t.saturated), t_zero = lanes::splat(t.zero);
  const d2 t_started = lanes::splat(t.started), t_unsat = lanes::splat(t.unsat);
  const d2 zero = lanes::splat(0.0), largest = lanes::splat(std::numeric_limits<double>::max());
  d2 mx = zero;
  CompensatedLanes linear_sum;
  mask2 bad = lanes::no_lanes();
  lanes::count2 saturated = lanes::no_counts(), linear = saturated, positive = saturated;
  std::size_t written = 0;
  next.clear();
  auto step = [&](d2 m, double* dst) {
    if constexpr (Track) {
      bad = lanes::either(bad, lanes::not_le(m, largest));  // NaN or inf
      mx = lanes::larger(m, mx);
      lanes::tally(positive, lanes::lt(zero, m));
    }
    const mask2 sat = lanes::ge(m, t_sat);
    const mask2 resolved = lanes::either(sat, lanes::le(m, t_zero));  // saturated or zero
    const mask2 lin = lanes::but_not(lanes::both(lanes::ge(m, t_started), lanes::le(m, t_unsat)), resolved);
    lanes::tally(saturated, sat);
    lanes::tally(linear, lin);
    linear_sum.add(lanes::keep(lin, m));
    const unsigned bits = lanes::lane_bits(lanes::but_not(lanes::all_lanes(), lanes::either(resolved, lin)));
    dst[written] = m[0];
    written += bits & 1u;
    dst[written] = m[1];
    written += bits >> 1;
  };
  for (std::size_t begin = 0; begin < k; begin += kChunk) {
    const std::size_t end = std::min(k, begin + kChunk);
    const std::size_t room = written + (end - begin) + lanes::kLanes;
    if (next.size() < room) next.resize(std::max(2 * next.size(), room));
    double* dst = next.data();
    std::size_t i = begin;
    for (; i + 2 <= end; i += 2) step(src.lanes(i), dst);
    if (i < end) step(lanes::make(src[i], 0.0), dst);
  }
  next.resize(written);
  br.saturated += lanes::total(saturated);
  br.linear += lanes::total(linear);
  br.linear_sum.add(linear_sum.combine());
  if constexpr (Track) {
    track->finite &= lanes::lane_bits(bad) == 0;
    track->max = std::max(track->max, std::max(mx[0], mx[1]));
    track->positive += lanes::total(positive);
  }
}

template <class Source>
void partition(const Source& src, Bracket& br, const Problem& pb, std::vector<double>& next, ScanAcc* track) {
  if (track)
    partition_pass<true>(src, br, pb, next, track);
  else
    partition_pass<false>(src, br, pb, next, nullptr);
}
// What the output pass adds up besides writing the values.
struct OutputSums {
  double head_sq = 0.0, tail_sq = 0.0;  // sum of m^2 over the saturated and the zero units
  std::size_t saturated = 0, rank = 0;
};

// One pass over the input: out_i = sign(x_i) a_i with a_i = m_i/(1 + beta) (saturated), 0 (zero)
// or m_i - cut (band; rounding noise below 8 eps m_i flushed to 0, and band values below the
// smallest normal double, 1e-308 of the rescaled largest magnitude, where subnormal arithmetic has
// lost the relative precision that test needs), m = |x| inv; +0.0 wherever the value is 0. Two
// units at a time as partition() takes them; an odd last unit with a zero beside it that is
// neither counted nor written.
// Scaled = false: sc is {1, 1} (the input was not rescaled), and both multiplications are left out
// (multiplying by 1 is exact: the same values).
template <bool Scaled, class T>
OutputSums write_values_pass(const T* x, std::size_t n, const Scale& sc, const Thresholds& t, double shrink, double cut,
                             T* out) {
  const d2 inv = lanes::splat(sc.inv), scale = lanes::splat(sc.scale);
  const d2 t_sat = lanes::splat(t.saturated), t_zero = lanes::splat(t.zero), vshrink = lanes::splat(shrink);
  const d2 vcut = lanes::splat(cut), flush = lanes::splat(rounding::kFlush), zero = lanes::splat(0.0);
  const d2 normal = lanes::splat(kNormal);
  d2 head = zero, tail = zero;
  lanes::count2 saturated = lanes::no_counts(), rank = saturated;
  auto step = [&](d2 xv, mask2 valid) {
    d2 m = lanes::magnitude(xv);
    if constexpr (Scaled) m = m * inv;
    const mask2 sat = lanes::both(valid, lanes::ge(m, t_sat));
    const mask2 low = lanes::but_not(lanes::le(m, t_zero), sat);
    const d2 cut_value = m - vcut;
    const mask2 band = lanes::but_not(lanes::both(lanes::gt(cut_value, flush * m), lanes::ge(cut_value, normal)),
                                      lanes::either(sat, low));
    const d2 a = lanes::keep(sat, m * vshrink) + lanes::keep(band, cut_value);  // one of the two is +0
    const d2 sq = m * m;
    head += lanes::keep(sat, sq);
    tail += lanes::keep(low, sq);
    lanes::tally(saturated, sat);
    lanes::tally(rank, lanes::lt(zero, a));
    if constexpr (Scaled) return lanes::with_sign(a * scale, xv);
    return lanes::with_sign(a, xv);
  };
  const mask2 all = lanes::all_lanes();
  std::size_t i = 0;
  for (; i + 2 <= n; i += 2) lanes::store(out + i, step(lanes::load(x + i), all));
  if (i < n) {
    out[i] = static_cast<T>(step(lanes::make(static_cast<double>(x[i]), 0.0), lanes::first_lane())[0]);
  }
  OutputSums o;
  o.head_sq = head[0] + head[1];
  o.tail_sq = tail[0] + tail[1];
  o.saturated = lanes::total(saturated);
  o.rank = lanes::total(rank);
  return o;
}

template <class T>
OutputSums write_values(const T* x, std::size_t n, const Scale& sc, const Thresholds& t, double shrink, double cut,
                        T* out) {
  if (sc.scale == 1.0 && sc.inv == 1.0) return write_values_pass<false>(x, n, sc, t, shrink, cut, out);
  return write_values_pass<true>(x, n, sc, t, shrink, cut, out);
}

}  // namespace
}  // namespace structdrop
