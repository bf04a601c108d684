#include "ksupport_select.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "ksupport_partition.hpp"
#include "ksupport_rounding.hpp"
#include "parallel.hpp"

namespace structdrop {
namespace {

using rounding::shrink_factor;

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

// The Scale of the largest magnitude; its exponent is kept >= -1000 so that inv is finite.
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

// By tau, ties broken deterministically. A function object, not a function: std::sort then inlines
// the comparison (through a function pointer it cost a tenth of a batch call at n = 1e5 per row).
struct Earlier {
  bool operator()(const End& a, const End& b) const {
    if (a.tau != b.tau) return a.tau < b.tau;
    if (a.saturates != b.saturates) return b.saturates;
    return a.m < b.m;
  }
};

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
  std::sort(ends.begin(), ends.end(), Earlier{});
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
  std::sort(events.begin(), events.end(), Earlier{});
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
  if (src.size() <= kExactFinish) {
    finish_exactly(src, br, pb, ws.ends);
    partition(src, br, pb, next, track);
    return;
  }
  bool has_lo, has_hi;
  End p_lo{}, p_hi{};
  sample_pivots(src, br, pb, rng, ws.ends, has_lo, p_lo, has_hi, p_hi);
  if (!has_lo && !has_hi) {  // no sampled breakpoint inside: take the first one there is
    ws.ends.clear();
    inside_breakpoints(src, br.thresholds(pb), pb, ws.ends);
    if (ws.ends.empty()) {  // no active unit at all (all zero, say): everything is resolved
      partition(src, br, pb, next, track);
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
  partition(src, spec, pb, next, track);
  // S at both pivots: a unit resolved on [p_lo, p_hi] has the same form at both ends (saturated,
  // zero or linear there: its part is in spec's sums), so only the new active set is summed unit by
  // unit, a few percent of the units instead of all of them.
  double s_lo = spec.resolved_weight(p_lo.tau, pb.beta), s_hi = spec.resolved_weight(p_hi.tau, pb.beta);
  for (const double m : next) {
    s_lo += weight(m, p_lo.tau, pb.beta);
    s_hi += weight(m, p_hi.tau, pb.beta);
  }
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
  partition(src, br, pb, next, nullptr);
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
    select_round(InputSource<T, false>{x, n, 1.0}, br, pb, rng, ws, ws.current, &acc);
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
    for (std::size_t i = 0; i < n; ++i) out[i] = x[i] + T(0);  // + 0: a -0.0 input gives +0.0
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
