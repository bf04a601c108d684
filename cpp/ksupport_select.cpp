#include "ksupport_select.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "ksupport_rounding.hpp"
#include "parallel.hpp"

// The SSE2 passes round exactly as the scalar ones; the portable (ISO C++) build leaves them out.
#if defined(__SSE2__) && !STRUCTDROP_PORTABLE
#define STRUCTDROP_SELECT_SSE2 1
#include <emmintrin.h>
#else
#define STRUCTDROP_SELECT_SSE2 0
#endif

namespace structdrop {
namespace {

using rounding::shrink_factor;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNormal = std::numeric_limits<double>::min();  // smallest normal double
constexpr std::size_t kExactFinish = 256;  // active sets this small are finished by an exact search
constexpr std::size_t kMaxSample = 512;    // units sampled to place a round's two pivots
constexpr std::size_t kMaxRounds = 1000;   // a safety net; about log(n) rounds are the rule
constexpr std::uint64_t kSeed = 0x5eed5eed2020ULL;

// SplitMix64 (Steele, Lea, Flood 2014): a small generator with a fixed seed, so that the pivots
// (and hence the rounding of the carried sums) are the same on every run.
struct SplitMix64 {
  std::uint64_t state = kSeed;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t k) { return static_cast<std::size_t>(next() % k); }
};

// One pass over the input: largest magnitude, number of non-zeros, finiteness.
struct Scan {
  double max = 0.0;
  std::size_t positive = 0;
  bool finite = true;
};

template <class T>
Scan scan(const T* x, std::size_t n) {
  Scan s;
  const double largest = std::numeric_limits<double>::max();
  for (std::size_t i = 0; i < n; ++i) {
    const double v = std::fabs(static_cast<double>(x[i]));
    s.finite &= v <= largest;  // false for NaN and inf
    s.max = v > s.max ? v : s.max;
    s.positive += v > 0.0;
  }
  return s;
}

// A power of two near the largest magnitude: dividing by it (multiplying by inv) is exact and
// puts the largest scaled magnitude in [1, 2). The exponent is kept >= -1000 so that inv is finite.
struct Scale {
  double scale = 1.0, inv = 1.0;
};

Scale power_of_two_scale(double max) {
  Scale s;
  if (!(max > 0.0)) return s;
  int exponent = 0;
  std::frexp(max, &exponent);  // max = f 2^exponent, f in [0.5, 1)
  const int k = std::max(exponent - 1, -1000);
  s.scale = std::ldexp(1.0, k);
  s.inv = std::ldexp(1.0, -k);
  return s;
}

// Scaled magnitudes read straight from the input (first round and output pass) or from a buffer.
template <class T>
struct InputSource {
  const T* x;
  std::size_t n;
  double inv;
  std::size_t size() const { return n; }
  double operator[](std::size_t i) const { return std::fabs(static_cast<double>(x[i])) * inv; }
};

struct BufferSource {
  const double* v;
  std::size_t n;
  std::size_t size() const { return n; }
  double operator[](std::size_t i) const { return v[i]; }
};

// A bracket end or a pivot: one unit's breakpoint.
using End = SelectBreakpoint;

bool earlier(const End& a, const End& b) {  // by tau, ties broken deterministically
  if (a.tau != b.tau) return a.tau < b.tau;
  if (a.saturates != b.saturates) return b.saturates;
  return a.m < b.m;
}

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
// it stays at a few eps whatever n is. Branch-free (the terms are >= 0, so the larger of s and v
// is known from one comparison).
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

// The state of the selection: the root tau lies in the bracket [lo, hi] with S(lo) <= r < S(hi)
// (no lo: 0; no hi: +inf; a root exactly on a breakpoint is lo, so a unit that saturates there is
// in the head, where its value m/(1 + beta) carries no cancellation, as in the sorted sweep), and every unit outside
// the active set is resolved on (lo, hi): saturated (t = 1), zero, or linear (t = m tau - beta throughout), with its
// contribution carried in these sums.
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
// so it may differ from the threshold classification by rounding; branch-free on purpose (on
// unsorted input every branch here would be a coin flip).
inline double weight(double m, double tau, double beta) {
  const double t = m * tau - beta;
#if STRUCTDROP_SELECT_SSE2
  // minsd/maxsd: the compiler otherwise emits branches for the clamp
  return _mm_cvtsd_f64(_mm_min_sd(_mm_max_sd(_mm_set_sd(t), _mm_setzero_pd()), _mm_set_sd(1.0)));
#else
  return std::min(1.0, std::max(0.0, t));
#endif
}

// Resolves every unit of `src` on the bracket into br's sums, or copies it to `next` (the new
// active set), and calls visit(m) on each. Branch-free per unit: the store is unconditional and the
// write position advances only for active units (chunks keep `next` large enough).
template <class Source, class Visit>
void partition(const Source& src, Bracket& br, const Problem& pb, std::vector<double>& next, Visit visit) {
  constexpr std::size_t kChunk = 4096;
  const std::size_t k = src.size();
  const Thresholds t = br.thresholds(pb);
  std::size_t written = 0, saturated = 0, linear = 0;
  CompensatedSum linear_sum;
  next.clear();
  for (std::size_t begin = 0; begin < k; begin += kChunk) {
    const std::size_t end = std::min(k, begin + kChunk);
    if (next.size() < written + (end - begin)) next.resize(std::max(2 * next.size(), written + (end - begin)));
    double* dst = next.data();
    for (std::size_t i = begin; i < end; ++i) {
      const double m = src[i];
      visit(m);
      const bool sat = m >= t.saturated;
      const bool zero = !sat & (m <= t.zero);
      const bool lin = !sat & !zero & (m >= t.started) & (m <= t.unsat);
      saturated += sat;
      linear += lin;
      linear_sum.add(lin ? m : 0.0);
      dst[written] = m;
      written += !(sat | zero | lin);
    }
  }
  next.resize(written);
  br.saturated += saturated;
  br.linear += linear;
  br.linear_sum.add(linear_sum);
}

// The scan (finite, largest, non-zeros) when the first round takes it on the way.
struct ScanAcc {
  bool finite = true;
  double max = 0.0;
  std::size_t positive = 0;
  void add(double m) {
    finite &= m <= std::numeric_limits<double>::max();  // false for NaN and inf
    max = std::max(max, m);
    positive += m > 0.0;
  }
};

// Sources the SSE2 partition can read directly: |x| inv from a float or double input, or a buffer.
template <class E>
struct SimdView {
  const E* v;
  std::size_t n;
  double inv;
  bool magnitude;  // take |v| inv, else v as is
};
template <class Source>
constexpr bool kHasSimdView = std::is_same_v<Source, InputSource<double>> ||
                              std::is_same_v<Source, InputSource<float>> || std::is_same_v<Source, BufferSource>;
template <class T>
SimdView<T> simd_view(const InputSource<T>& s) {
  return {s.x, s.n, s.inv, true};
}
inline SimdView<double> simd_view(const BufferSource& s) { return {s.v, s.n, 1.0, false}; }

#if STRUCTDROP_SELECT_SSE2
// Two consecutive values as doubles (floats are widened exactly).
inline __m128d load2(const double* p) { return _mm_loadu_pd(p); }
inline __m128d load2(const float* p) {
  return _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline void store2(double* p, __m128d v) { _mm_storeu_pd(p, v); }
inline void store2(float* p, __m128d v) {  // rounds to float, as static_cast does
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_castps_si128(_mm_cvtpd_ps(v)));
}
#endif

#if STRUCTDROP_SELECT_SSE2
// partition() fused with S(tau_lo), S(tau_hi) (and the scan when Track), two units per step. The
// compaction stays scalar (two conditional-advance stores); every sum is per lane, combined in a
// fixed order, so results do not depend on anything but the input.
template <bool Track, class E>
void partition_sse2(const SimdView<E>& view, Bracket& br, const Problem& pb, std::vector<double>& next, double tau_lo,
                    double tau_hi, double& s_lo, double& s_hi, ScanAcc* track) {
  constexpr std::size_t kChunk = 4096;
  const std::size_t k = view.n;
  const Thresholds t = br.thresholds(pb);
  const __m128d sign = _mm_set1_pd(-0.0), inv = _mm_set1_pd(view.inv), zero = _mm_setzero_pd(), one = _mm_set1_pd(1.0);
  const __m128d vbeta = _mm_set1_pd(pb.beta), vlo = _mm_set1_pd(tau_lo), vhi = _mm_set1_pd(tau_hi);
  const __m128d t_sat = _mm_set1_pd(t.saturated), t_zero = _mm_set1_pd(t.zero);
  const __m128d t_started = _mm_set1_pd(t.started), t_unsat = _mm_set1_pd(t.unsat);
  const __m128d largest = _mm_set1_pd(std::numeric_limits<double>::max());
  __m128d w_lo = zero, w_hi = zero, lin_sum = zero, lin_carry = zero, mx = zero, bad = zero;
  std::size_t written = 0, saturated = 0, linear = 0, positive = 0;
  next.clear();
  std::size_t i = 0;
  alignas(16) double lane[2];
  for (std::size_t begin = 0; begin + 2 <= k; begin += kChunk) {
    const std::size_t end = std::min(k, begin + kChunk) & ~std::size_t{1};
    if (next.size() < written + (end - begin)) next.resize(std::max(2 * next.size(), written + (end - begin)));
    double* dst = next.data();
    for (i = begin; i < end; i += 2) {
      __m128d m = load2(view.v + i);
      if (view.magnitude) m = _mm_mul_pd(_mm_andnot_pd(sign, m), inv);
      if constexpr (Track) {
        bad = _mm_or_pd(bad, _mm_cmpnle_pd(m, largest));  // NaN or inf
        mx = _mm_max_pd(m, mx);                           // a NaN m keeps mx (and sets bad)
        positive += static_cast<std::size_t>(_mm_movemask_pd(_mm_cmpgt_pd(m, zero)) & 1) +
                    static_cast<std::size_t>(_mm_movemask_pd(_mm_cmpgt_pd(m, zero)) >> 1);
      }
      w_lo = _mm_add_pd(w_lo, _mm_min_pd(_mm_max_pd(_mm_sub_pd(_mm_mul_pd(m, vlo), vbeta), zero), one));
      w_hi = _mm_add_pd(w_hi, _mm_min_pd(_mm_max_pd(_mm_sub_pd(_mm_mul_pd(m, vhi), vbeta), zero), one));
      const __m128d sat = _mm_cmpge_pd(m, t_sat);
      const __m128d low = _mm_andnot_pd(sat, _mm_cmple_pd(m, t_zero));
      const __m128d lin =
          _mm_andnot_pd(_mm_or_pd(sat, low), _mm_and_pd(_mm_cmpge_pd(m, t_started), _mm_cmple_pd(m, t_unsat)));
      // Kahan per lane over the linear units' m
      const __m128d y = _mm_sub_pd(_mm_and_pd(lin, m), lin_carry);
      const __m128d sum = _mm_add_pd(lin_sum, y);
      lin_carry = _mm_sub_pd(_mm_sub_pd(sum, lin_sum), y);
      lin_sum = sum;
      const unsigned sat_bits = static_cast<unsigned>(_mm_movemask_pd(sat));
      const unsigned lin_bits = static_cast<unsigned>(_mm_movemask_pd(lin));
      const unsigned active = ~static_cast<unsigned>(_mm_movemask_pd(_mm_or_pd(_mm_or_pd(sat, low), lin))) & 3u;
      saturated += (sat_bits & 1u) + (sat_bits >> 1);
      linear += (lin_bits & 1u) + (lin_bits >> 1);
      _mm_store_pd(lane, m);
      dst[written] = lane[0];
      written += active & 1u;
      dst[written] = lane[1];
      written += active >> 1;
    }
  }
  next.resize(written);
  alignas(16) double lo2[2], hi2[2], ls2[2], lc2[2], mx2[2], bad2[2];
  _mm_store_pd(lo2, w_lo);
  _mm_store_pd(hi2, w_hi);
  _mm_store_pd(ls2, lin_sum);
  _mm_store_pd(lc2, lin_carry);
  _mm_store_pd(mx2, mx);
  _mm_store_pd(bad2, bad);
  s_lo += lo2[0] + lo2[1];
  s_hi += hi2[0] + hi2[1];
  br.saturated += saturated;
  br.linear += linear;
  CompensatedSum lanes;
  lanes.add(ls2[0]);
  lanes.add(ls2[1]);
  lanes.carry -= lc2[0] + lc2[1];
  br.linear_sum.add(lanes);
  if constexpr (Track) {
    std::uint64_t bits0, bits1;
    std::memcpy(&bits0, &bad2[0], 8);
    std::memcpy(&bits1, &bad2[1], 8);
    track->finite &= (bits0 | bits1) == 0;
    track->max = std::max(track->max, std::max(mx2[0], mx2[1]));
    track->positive += positive;
  }
  // the odd last unit
  for (i = k & ~std::size_t{1}; i < k; ++i) {
    const double m = view.magnitude ? std::fabs(static_cast<double>(view.v[i])) * view.inv : view.v[i];
    if constexpr (Track) track->add(m);
    s_lo += weight(m, tau_lo, pb.beta);
    s_hi += weight(m, tau_hi, pb.beta);
    const bool sat = m >= t.saturated, low = !sat & (m <= t.zero);
    const bool lin = !sat & !low & (m >= t.started) & (m <= t.unsat);
    br.saturated += sat;
    br.linear += lin;
    if (lin) br.linear_sum.add(m);
    if (!(sat | low | lin)) next.push_back(m);
  }
}
#endif

// partition() that also adds up S at two pivots (and the scan when track is given).
template <class Source>
void partition_weighed(const Source& src, Bracket& br, const Problem& pb, std::vector<double>& next, double tau_lo,
                       double tau_hi, double& s_lo, double& s_hi, ScanAcc* track) {
#if STRUCTDROP_SELECT_SSE2
  if constexpr (kHasSimdView<Source>) {
    if (track)
      partition_sse2<true>(simd_view(src), br, pb, next, tau_lo, tau_hi, s_lo, s_hi, track);
    else
      partition_sse2<false>(simd_view(src), br, pb, next, tau_lo, tau_hi, s_lo, s_hi, nullptr);
    return;
  }
#endif
  partition(src, br, pb, next, [&](double m) {
    if (track) track->add(m);
    s_lo += weight(m, tau_lo, pb.beta);
    s_hi += weight(m, tau_hi, pb.beta);
  });
}

template <class Source>
double total_weight(const Source& src, const Bracket& br, const Problem& pb, double tau) {
  double s = br.resolved_weight(tau, pb.beta);
  for (std::size_t i = 0; i < src.size(); ++i) s += weight(src[i], tau, pb.beta);
  return s;
}

// The breakpoints of the active units of `src` that lie inside the bracket, appended to `ends`.
template <class Source>
void inside_breakpoints(const Source& src, const Thresholds& t, const Problem& pb, std::vector<End>& ends) {
  for (std::size_t i = 0; i < src.size(); ++i) {
    const double m = src[i];
    if (start_inside(m, t)) ends.push_back(pb.start(m));
    if (saturation_inside(m, t)) ends.push_back(pb.saturation(m));
  }
}

// Small active sets: all their breakpoints inside the bracket, sorted, and a binary search with
// the exact S; the new bracket holds none of them, so the next partition resolves every unit.
template <class Source>
void finish_exactly(const Source& src, Bracket& br, const Problem& pb, std::vector<End>& ends) {
  ends.clear();
  inside_breakpoints(src, br.thresholds(pb), pb, ends);
  std::sort(ends.begin(), ends.end(), earlier);
  std::size_t lo = 0, hi = ends.size();  // first index with S > r
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (total_weight(src, br, pb, ends[mid].tau) > pb.r)
      hi = mid;
    else
      lo = mid + 1;
  }
  if (lo > 0) {
    br.lo = ends[lo - 1];
    br.has_lo = true;
  }
  if (lo < ends.size()) {
    br.hi = ends[lo];
    br.has_hi = true;
  }
}

// Two pivots inside the bracket that probably enclose the root: S is estimated from a sample of
// the active units (their breakpoints sorted and swept), and the pivots are the sample breakpoints
// about sqrt(sample size) places either side of the estimated crossing.
template <class Source>
void sample_pivots(const Source& src, const Bracket& br, const Problem& pb, SplitMix64& rng, std::vector<End>& events,
                   bool& has_lo, End& p_lo, bool& has_hi, End& p_hi) {
  const std::size_t k = src.size();
  const std::size_t count = std::min(kMaxSample, std::max<std::size_t>(32, k / 16));
  const double factor = static_cast<double>(k) / static_cast<double>(count);
  const Thresholds t = br.thresholds(pb);
  events.clear();
  double sat = 0.0, act_sum = 0.0, act_count = 0.0;  // the sample just above the bracket's lo
  for (std::size_t j = 0; j < count; ++j) {
    const double m = src[rng.below(k)];
    switch (classify(m, t)) {
      case Class::kSaturated:
        sat += 1.0;
        break;
      case Class::kLinear:
        act_sum += m;
        act_count += 1.0;
        break;
      case Class::kZero:
        break;
      case Class::kActive:
        if (start_inside(m, t))
          events.push_back(pb.start(m));
        else if (m >= t.started) {
          act_sum += m;
          act_count += 1.0;
        }
        if (saturation_inside(m, t)) events.push_back(pb.saturation(m));
        break;
    }
  }
  has_lo = has_hi = false;
  if (events.empty()) return;
  std::sort(events.begin(), events.end(), earlier);
  const std::size_t c = events.size();
  std::size_t cross = c;  // first event at which the estimated S exceeds r
  for (std::size_t j = 0; j < c; ++j) {
    const double tau = events[j].tau;
    const double estimate = br.resolved_weight(tau, pb.beta) + factor * (sat + act_sum * tau - pb.beta * act_count);
    if (estimate > pb.r) {
      cross = j;
      break;
    }
    if (events[j].saturates) {
      act_sum -= events[j].m;
      act_count -= 1.0;
      sat += 1.0;
    } else {
      act_sum += events[j].m;
      act_count += 1.0;
    }
  }
  const std::size_t slack = 1 + static_cast<std::size_t>(std::sqrt(static_cast<double>(c)));
  if (cross >= slack + 1) {
    p_lo = events[cross - 1 - slack];
    has_lo = true;
  }
  if (cross + slack < c) {
    p_hi = events[cross + slack];
    has_hi = true;
  }
  if (!has_lo && !has_hi) {
    p_hi = events[std::min(cross, c - 1)];
    has_hi = true;
  }  // keep progress
}

// One round over the active units in `src`: place pivots, evaluate S at both in one pass while
// speculatively partitioning against the likely bracket (p_lo, p_hi), and repartition only when
// the root fell outside it. The new active set goes to `next`; `track` (if given) sees every unit once.
template <class Source>
void select_round(const Source& src, Bracket& br, const Problem& pb, SplitMix64& rng, SelectWorkspace& ws,
                  std::vector<double>& next, ScanAcc* track) {
  auto visit = [track](double m) {
    if (track) track->add(m);
  };
  if (src.size() <= kExactFinish) {
    finish_exactly(src, br, pb, ws.ends);
    partition(src, br, pb, next, visit);
    return;
  }
  bool has_lo, has_hi;
  End p_lo{}, p_hi{};
  sample_pivots(src, br, pb, rng, ws.ends, has_lo, p_lo, has_hi, p_hi);
  if (!has_lo && !has_hi) {  // no sampled breakpoint inside: take the first one there is
    ws.ends.clear();
    inside_breakpoints(src, br.thresholds(pb), pb, ws.ends);
    if (ws.ends.empty()) {  // no active unit at all (all zero, say): everything is resolved
      partition(src, br, pb, next, visit);
      return;
    }
    p_hi = ws.ends.front();
    has_hi = true;
  }
  Bracket spec = br;
  if (has_lo) {
    spec.lo = p_lo;
    spec.has_lo = true;
  }
  if (has_hi) {
    spec.hi = p_hi;
    spec.has_hi = true;
  }
  double s_lo = br.resolved_weight(p_lo.tau, pb.beta), s_hi = br.resolved_weight(p_hi.tau, pb.beta);
  partition_weighed(src, spec, pb, next, p_lo.tau, p_hi.tau, s_lo, s_hi, track);
  const bool below = has_lo && s_lo > pb.r;   // the root is left of p_lo
  const bool above = has_hi && s_hi <= pb.r;  // the root is right of (or at) p_hi
  if (!below && !above) {
    br = spec;  // the usual case: one pass did it all
    return;
  }
  if (below) {
    br.hi = p_lo;
    br.has_hi = true;
  } else {
    br.lo = p_hi;
    br.has_lo = true;
  }
  partition(src, br, pb, next, [](double) {});
}

// sign(x) a, with +0 for a = 0 (a >= 0).
template <class T>
T signed_value(double a, T x) {
  return static_cast<T>(std::copysign(a, static_cast<double>(x)) + 0.0);
}

}  // namespace

namespace {

// What the output pass adds up besides writing the values.
struct OutputSums {
  double head_sq = 0.0, tail_sq = 0.0;  // sum of m^2 over the saturated and the zero units
  std::size_t saturated = 0, rank = 0;
};

// One pass over the input: out_i = sign(x_i) a_i with a_i = m_i/(1 + beta) (saturated), 0 (zero)
// or m_i - cut (band; rounding noise below 8 eps m_i flushed to 0, and band values below the
// smallest normal double, 1e-308 of the rescaled largest magnitude, where subnormal arithmetic has
// lost the relative precision that test needs), m = |x| inv.
template <class T>
OutputSums write_values(const T* x, std::size_t n, const Scale& sc, const Thresholds& t, double shrink, double cut,
                        T* out) {
  OutputSums o;
  std::size_t i = 0;
#if STRUCTDROP_SELECT_SSE2
  {
    // Two lanes at a time (float input widened exactly, the values rounded back once); the per-lane sums are combined
    // at the end (a fixed order).
    const __m128d sign = _mm_set1_pd(-0.0), inv = _mm_set1_pd(sc.inv), scale = _mm_set1_pd(sc.scale);
    const __m128d t_sat = _mm_set1_pd(t.saturated), t_zero = _mm_set1_pd(t.zero), vshrink = _mm_set1_pd(shrink);
    const __m128d vcut = _mm_set1_pd(cut), flush = _mm_set1_pd(rounding::kFlush), zero = _mm_setzero_pd();
    const __m128d normal = _mm_set1_pd(std::numeric_limits<double>::min());
    __m128d head = _mm_setzero_pd(), tail = _mm_setzero_pd();
    for (; i + 2 <= n; i += 2) {
      const __m128d xv = load2(x + i);
      const __m128d m = _mm_mul_pd(_mm_andnot_pd(sign, xv), inv);
      const __m128d sat = _mm_cmpge_pd(m, t_sat);
      const __m128d low = _mm_andnot_pd(sat, _mm_cmple_pd(m, t_zero));
      const __m128d cut_value = _mm_sub_pd(m, vcut);
      const __m128d band = _mm_andnot_pd(_mm_or_pd(sat, low), _mm_and_pd(_mm_cmpgt_pd(cut_value, _mm_mul_pd(flush, m)),
                                                                         _mm_cmpge_pd(cut_value, normal)));
      const __m128d a = _mm_or_pd(_mm_and_pd(sat, _mm_mul_pd(m, vshrink)), _mm_and_pd(band, cut_value));
      const __m128d sq = _mm_mul_pd(m, m);
      head = _mm_add_pd(head, _mm_and_pd(sat, sq));
      tail = _mm_add_pd(tail, _mm_and_pd(low, sq));
      const __m128d positive = _mm_cmpgt_pd(a, zero);
      const unsigned sat_bits = static_cast<unsigned>(_mm_movemask_pd(sat));
      const unsigned pos_bits = static_cast<unsigned>(_mm_movemask_pd(positive));
      o.saturated += (sat_bits & 1u) + (sat_bits >> 1);  // two-bit counts (no popcnt in the baseline ISA)
      o.rank += (pos_bits & 1u) + (pos_bits >> 1);
      // copysign for a > 0; +0.0 otherwise
      const __m128d value = _mm_or_pd(_mm_mul_pd(a, scale), _mm_and_pd(positive, _mm_and_pd(sign, xv)));
      store2(out + i, value);
    }
    alignas(16) double h[2], z[2];
    _mm_store_pd(h, head);
    _mm_store_pd(z, tail);
    o.head_sq = h[0] + h[1];
    o.tail_sq = z[0] + z[1];
  }
#endif
  for (; i < n; ++i) {
    const double m = std::fabs(static_cast<double>(x[i])) * sc.inv;
    const bool sat = m >= t.saturated, low = !sat & (m <= t.zero), band = !(sat | low);
    const double cut_value = m - cut;
    const double a =
        sat ? m * shrink : (band && cut_value > rounding::kFlush * m && cut_value >= kNormal ? cut_value : 0.0);
    o.head_sq += sat ? m * m : 0.0;
    o.tail_sq += low ? m * m : 0.0;
    o.saturated += sat;
    o.rank += a > 0.0;
    out[i] = signed_value(a * sc.scale, x[i]);
  }
  return o;
}

// Magnitudes of this size need no rescaling before the selection (squares, sums and breakpoints
// stay far from overflow and underflow); beyond, the input is rescaled by a power of two.
constexpr int kSafeExponent = 400;

}  // namespace

template <class T>
ProxSolution prox_ksupport_sq_select(const T* x, std::size_t n, std::int64_t r, double beta, T* out,
                                     SelectWorkspace& ws) {
  ProxSolution sol;
  if constexpr (std::is_same_v<T, double>) {
    // Already sorted, non-negative and of moderate size (no rescaling needed): the sweep.
    const double low = std::ldexp(1.0, -200), high = std::ldexp(1.0, 200);
    if (n > 0 && x[0] >= low && x[0] <= high && x[n - 1] >= 0.0 &&
        prox_ksupport_sq_sweep_if_sorted(x, n, r, beta, out, &sol))
      return sol;
  }
  const std::size_t ru = static_cast<std::size_t>(r);
  const double shrink = shrink_factor(beta);
  const Problem pb{static_cast<double>(ru),
                   beta,
                   1.0 + beta,
                   (1.0 + beta) / beta,
                   beta / (1.0 + beta),
                   (1.0 + beta) / std::numeric_limits<double>::max()};
  Bracket br;
  SplitMix64 rng;
  Scan s;
  Scale sc;
  // Large input with a penalty: the first round runs on the unscaled magnitudes and takes the
  // scan (finite, largest, non-zeros) on the way, saving a pass; it is redone rescaled when the
  // largest magnitude turns out to be extreme (or the scan comes first for small input).
  bool first_round_done = false;
  if (beta > 0.0 && n > kExactFinish) {
    ScanAcc acc;
    select_round(InputSource<T>{x, n, 1.0}, br, pb, rng, ws, ws.current, &acc);
    s = Scan{acc.max, acc.positive, acc.finite};
    if (!s.finite) throw std::invalid_argument("input contains NaN or infinite values");
    int exponent = 0;
    std::frexp(s.max, &exponent);
    first_round_done = s.max > 0.0 && std::abs(exponent) <= kSafeExponent;
    if (!first_round_done) br = Bracket{}, rng = SplitMix64{};
  } else {
    s = scan(x, n);
    if (!s.finite) throw std::invalid_argument("input contains NaN or infinite values");
  }
  const std::size_t p = s.positive;
  sol.rho = static_cast<std::int64_t>(std::min(p + 1, ru));
  sol.rank = static_cast<std::int64_t>(p);
  if (p == 0) {
    std::fill(out, out + n, T(0));
    sol.rho = 1;
    return sol;
  }
  if (beta == 0.0) {  // no penalty: a = m (rho as in the limit of a head holding every unit)
    std::copy(x, x + n, out);
    return sol;
  }
  if (!first_round_done) sc = power_of_two_scale(s.max);
  if (p <= ru) {  // t = 1 on every positive unit: a = m/(1 + beta)
    const Thresholds all_saturated{0.0, 0.0, -1.0, -1.0};
    const OutputSums o = write_values(x, n, sc, all_saturated, shrink, 0.0, out);
    sol.objective = beta * shrink * o.head_sq * sc.scale * sc.scale;
    return sol;
  }
  if (!first_round_done) select_round(InputSource<T>{x, n, sc.inv}, br, pb, rng, ws, ws.current, nullptr);
  for (std::size_t round = 1; !ws.current.empty(); ++round) {
    if (round > kMaxRounds) {
      // Never seen: the units left have breakpoints within rounding of the bracket's ends
      // (thresholds that disagree by an ulp); either class is right to rounding: linear.
      for (const double m : ws.current) {
        ++br.linear;
        br.linear_sum.add(m);
      }
      break;
    }
    select_round(BufferSource{ws.current.data(), ws.current.size()}, br, pb, rng, ws, ws.next, nullptr);
    std::swap(ws.current, ws.next);
  }

  // Every unit is now resolved on the bracket: one pass writes the values and the objective terms
  // (the band's sum of m is the carried linear sum: the same units).
  const double band_sum = br.linear_sum.value();
  double cut = 0.0;
  if (br.linear > 0)
    cut = beta * band_sum / (pb.r - static_cast<double>(br.saturated) + beta * static_cast<double>(br.linear));
  const OutputSums o = write_values(x, n, sc, br.thresholds(pb), shrink, cut, out);
  sol.rho = static_cast<std::int64_t>(std::min(o.saturated + 1, ru));
  sol.rank = static_cast<std::int64_t>(o.rank);
  sol.objective = (beta * shrink * o.head_sq + cut * band_sum + o.tail_sq) * sc.scale * sc.scale;
  return sol;
}

template <class T>
KSupportNorm ksupport_norm_sq_select(const T* x, std::size_t n, std::int64_t r) {
  const Scan s = scan(x, n);
  if (!s.finite) throw std::invalid_argument("input contains NaN or infinite values");
  if (s.positive == 0) return KSupportNorm{};
  const Scale sc = power_of_two_scale(s.max);
  std::vector<double> values;
  values.reserve(s.positive);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = std::fabs(static_cast<double>(x[i])) * sc.inv;
    if (v > 0.0) values.push_back(v);
  }
  const std::size_t count = std::min(static_cast<std::size_t>(r), values.size());
  std::nth_element(values.begin(), values.begin() + (count - 1), values.end(), std::greater<double>());
  std::sort(values.begin(), values.begin() + count, std::greater<double>());
  double rest = 0.0;
  for (std::size_t i = count; i < values.size(); ++i) rest += values[i];
  KSupportNorm result = ksupport_norm_sq_head(values.data(), count, r, rest);
  result.norm_sq *= sc.scale * sc.scale;
  return result;
}

template <class T>
void prox_ksupport_sq_rows(const T* x, std::size_t rows, std::size_t n, std::int64_t r, double beta, T* out,
                           double* objective, std::int64_t* rho, std::int64_t* rank, int threads,
                           std::int64_t* bad_row) {
  std::atomic<std::int64_t> bad{-1};
  auto work = [&](std::size_t first, std::size_t last) {
    SelectWorkspace ws;
    for (std::size_t i = first; i < last; ++i) {
      try {
        const ProxSolution sol = prox_ksupport_sq_select(x + i * n, n, r, beta, out + i * n, ws);
        objective[i] = sol.objective;
        rho[i] = sol.rho;
        rank[i] = sol.rank;
      } catch (const std::invalid_argument&) {
        std::int64_t seen = bad.load();
        const auto row = static_cast<std::int64_t>(i);
        while ((seen < 0 || row < seen) && !bad.compare_exchange_weak(seen, row)) {
        }
      }
    }
  };
  // Contiguous chunks of rows, one per worker of the shared pool (each chunk keeps one workspace);
  // each row is solved alone, so the split changes no result.
  const auto workers = static_cast<std::size_t>(parallel::worker_count(threads, rows));
  parallel::for_each_index(workers, static_cast<int>(workers),
                           [&](std::size_t w) { work(rows * w / workers, rows * (w + 1) / workers); });
  *bad_row = bad.load();
}

template ProxSolution prox_ksupport_sq_select<double>(const double*, std::size_t, std::int64_t, double, double*,
                                                      SelectWorkspace&);
template ProxSolution prox_ksupport_sq_select<float>(const float*, std::size_t, std::int64_t, double, float*,
                                                     SelectWorkspace&);
template KSupportNorm ksupport_norm_sq_select<double>(const double*, std::size_t, std::int64_t);
template KSupportNorm ksupport_norm_sq_select<float>(const float*, std::size_t, std::int64_t);
template void prox_ksupport_sq_rows<double>(const double*, std::size_t, std::size_t, std::int64_t, double, double*,
                                            double*, std::int64_t*, std::int64_t*, int, std::int64_t*);
template void prox_ksupport_sq_rows<float>(const float*, std::size_t, std::size_t, std::int64_t, double, float*,
                                           double*, std::int64_t*, std::int64_t*, int, std::int64_t*);

}  // namespace structdrop
