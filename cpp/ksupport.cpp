#include "ksupport.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include "ksupport_lanes.hpp"
#include "ksupport_rounding.hpp"
#include "parallel.hpp"
#include "reduce.hpp"

namespace structdrop {
namespace {

using reduce::scale_and_sum_sq;
using reduce::sum_range;
using reduce::sum_sq_range;
using rounding::band_value;
using rounding::shrink_factor;

// Number of strictly positive entries of a descending, non-negative array.
std::size_t count_positive(const double* m, std::size_t n) {
  return static_cast<std::size_t>(std::partition_point(m, m + n, [](double v) { return v > 0.0; }) - m);
}

// Block sums of m so that any range sum costs O(kBlock) instead of O(n), without
// storing a full prefix array. Range sums built from these are used only to *locate* the
// threshold; the final values are recomputed directly from m, so the cancellation of long
// prefix differences never reaches a result.
class SortedProfile {
 public:
  static constexpr std::size_t kBlock = 64;

  // Validates while it sums (one pass over m instead of two): throws std::invalid_argument unless
  // m is finite, non-negative and non-increasing.
  SortedProfile(const double* m, std::size_t n) : SortedProfile(m, n, std::nothrow) {
    if (!valid_) throw std::invalid_argument("m must be finite, non-negative and sorted in descending order");
  }
  // The same without throwing: stops at the first block that breaks the order (so unsorted input
  // costs O(kBlock), not a pass) and reports it through valid().
  SortedProfile(const double* m, std::size_t n, std::nothrow_t) : m_(m), n_(n), nnz_(0) {
    const std::size_t blocks = (n + kBlock - 1) / kBlock;
    prefix_.assign(blocks + 1, 0.0);
    for (std::size_t b = 0; b < blocks && valid_; ++b) {
      const std::size_t lo = b * kBlock, hi = std::min(n, lo + kBlock);
      valid_ = reduce::is_descending_nonnegative_finite(m_ + lo, hi - lo) && (lo == 0 || m_[lo] <= m_[lo - 1]);
      prefix_[b + 1] = prefix_[b] + sum_range(m_, lo, hi);
    }
    if (valid_) nnz_ = count_positive(m_, n_);
  }

  bool valid() const { return valid_; }
  const double* values() const { return m_; }
  std::size_t size() const { return n_; }
  std::size_t nnz() const { return nnz_; }

  // sum of m[begin, end) within the positive part.
  double range_sum(std::size_t begin, std::size_t end) const {
    if (end <= begin) return 0.0;
    const std::size_t b0 = (begin + kBlock - 1) / kBlock, b1 = end / kBlock;
    if (b0 >= b1) return sum_range(m_, begin, end);
    return sum_range(m_, begin, b0 * kBlock) + (prefix_[b1] - prefix_[b0]) + sum_range(m_, b1 * kBlock, end);
  }

  // Number of leading (positive) units with m_i tau - beta >= 1 (saturated, t_i = 1).
  std::size_t saturated(double tau, double beta) const {
    return static_cast<std::size_t>(
        std::partition_point(m_, m_ + nnz_, [&](double v) { return v * tau - beta >= 1.0; }) - m_);
  }
  // Number of leading (positive) units with m_i tau - beta > 0 (t_i > 0).
  std::size_t started(double tau, double beta) const {
    return static_cast<std::size_t>(
        std::partition_point(m_, m_ + nnz_, [&](double v) { return v * tau - beta > 0.0; }) - m_);
  }
  // Units with m_i tau - beta >= 0: the ones counted active on the closed segment.
  std::size_t reached(double tau, double beta) const {
    return static_cast<std::size_t>(
        std::partition_point(m_, m_ + nnz_, [&](double v) { return v * tau - beta >= 0.0; }) - m_);
  }

  // S(tau) = sum_i clip(m_i tau - beta, 0, 1), non-decreasing in tau.
  double total_weight(double tau, double beta) const {
    const std::size_t h = saturated(tau, beta), l = started(tau, beta);
    if (l <= h) return static_cast<double>(h);
    return static_cast<double>(h) + tau * range_sum(h, l) - beta * static_cast<double>(l - h);
  }

 private:
  const double* m_;
  std::size_t n_;
  std::size_t nnz_;
  bool valid_ = true;
  std::vector<double> prefix_;
};

// The structure of the sweep's minimiser: units [0, head) saturated (t = 1), [head, active_end)
// strictly inside (0 <= t <= 1), the rest t = 0; tau the threshold. head == active_end means
// no unit inside the band.
struct Threshold {
  std::size_t head = 0;
  std::size_t active_end = 0;
  double tau = 0.0;
  double active_sum = 0.0;  // sum of m over [head, active_end), summed directly (compensated)
};

// Number of leading indices in [0, count) where a monotone (true, then false) predicate holds.
template <class Pred>
std::size_t leading_true(std::size_t count, Pred pred) {
  std::size_t lo = 0, hi = count;  // invariant: all < lo true, all >= hi false
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (pred(mid))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bool threshold_consistent(const double* m, std::size_t nnz, const Threshold& th, double beta) {
  // Classification must agree with t_i = clip(m_i tau - beta, 0, 1), up to rounding.
  const double tol = 1e-9 * std::max(1.0, beta);  // m_i tau - beta carries ~eps * beta rounding
  const double tau = th.tau;
  if (!(tau > 0.0) || !std::isfinite(tau)) return false;
  if (th.head > 0 && m[th.head - 1] * tau - beta < 1.0 - tol) return false;
  if (th.active_end > th.head) {
    if (m[th.head] * tau - beta > 1.0 + tol) return false;
    if (m[th.active_end - 1] * tau - beta < -tol) return false;
  }
  if (th.active_end < nnz && m[th.active_end] * tau - beta > tol) return false;
  return true;
}

// Robust fallback: merge the two sorted breakpoint streams beta/m_i (unit starts) and
// (beta+1)/m_i (unit saturates) with compensated running sums. O(n), branchy, exact-ish.
Threshold locate_by_merge(const double* m, std::size_t nnz, double r, double beta) {
  std::size_t next_start = 0, next_end = 0;
  double sum = 0.0, comp = 0.0;  // Neumaier-compensated sum of m over the active units
  auto add = [&](double v) {
    const double t = sum + v;
    comp += (std::abs(sum) >= std::abs(v)) ? (sum - t) + v : (v - t) + sum;
    sum = t;
  };
  Threshold th;
  for (;;) {
    const double tau_start = next_start < nnz ? beta / m[next_start] : std::numeric_limits<double>::infinity();
    const double tau_end = next_end < next_start ? (beta + 1.0) / m[next_end] : std::numeric_limits<double>::infinity();
    const double tau_next = std::min(tau_start, tau_end);
    const double active = static_cast<double>(next_start - next_end);
    const double weight_next = static_cast<double>(next_end) + tau_next * (sum + comp) - beta * active;
    if (!(weight_next < r) || !std::isfinite(tau_next)) {
      th.head = next_end;
      th.active_end = next_start;
      break;
    }
    if (tau_end <= tau_start) {
      add(-m[next_end]);
      ++next_end;
    } else {
      add(m[next_start]);
      ++next_start;
    }
  }
  return th;
}

// Finds the threshold for sorted positive m with nnz > r.
Threshold locate_threshold(const SortedProfile& profile, double r, double beta) {
  const double* m = profile.values();
  const std::size_t p = profile.nnz();
  // Unit starts at b_j = beta/m_j and saturates at e_j = (beta+1)/m_j; both ascending in j.
  const std::size_t starts = leading_true(p, [&](std::size_t j) {
    return profile.total_weight(beta / m[j], beta) <= r;
  });  // number of b_j with S(b_j) <= r (>= 1: S(b_0) = 0)
  const std::size_t ends =
      leading_true(p, [&](std::size_t k) { return profile.total_weight((beta + 1.0) / m[k], beta) <= r; });
  Threshold th;
  th.head = ends;
  th.active_end = std::max(starts, ends);
  if (th.active_end > th.head) {
    th.active_sum = reduce::compensated_sum_range(m, th.head, th.active_end);
    th.tau = (r - static_cast<double>(th.head) + beta * static_cast<double>(th.active_end - th.head)) / th.active_sum;
  }
  if (th.active_end == th.head || !threshold_consistent(m, p, th, beta)) {
    th = locate_by_merge(m, p, r, beta);
    if (th.active_end > th.head) {
      th.active_sum = reduce::compensated_sum_range(m, th.head, th.active_end);
      th.tau = (r - static_cast<double>(th.head) + beta * static_cast<double>(th.active_end - th.head)) / th.active_sum;
    }
  }
  return th;
}

}  // namespace

KSupportNorm ksupport_norm_sq_sorted(const double* s, std::size_t n, std::int64_t r) {
  const std::size_t nnz = count_positive(s, n);
  const std::size_t ru = static_cast<std::size_t>(r);
  if (nnz == 0 || ru > nnz) return ksupport_norm_sq_head(s, nnz, r, 0.0);
  return ksupport_norm_sq_head(s, ru, r, sum_range(s, ru, nnz));
}

KSupportNorm ksupport_norm_sq_head(const double* head, std::size_t count, std::int64_t r, double rest_sum) {
  KSupportNorm out;
  if (count == 0) return out;
  const std::size_t ru = static_cast<std::size_t>(r);
  if (ru > count) {  // r >= nnz + 1: every unit is in the head; rho* = nnz + 1 <= r.
    out.rho = static_cast<std::int64_t>(count) + 1;
    out.norm_sq = sum_sq_range(head, 0, count);
    return out;
  }
  // rho* is the smallest rho in 1..r with T_rho >= (r - rho + 1) s_rho; it exists (rho = r) and
  // also satisfies s_{rho-1} > T_rho/(r - rho + 1). Walk rho downwards so that T only grows
  // (no cancellation).
  double tail = head[ru - 1] + rest_sum;  // T_r (1-based): s_r + s_{r+1} + ...
  std::size_t best = ru;                  // 1-based
  double best_tail = tail;
  for (std::size_t rho = ru; rho >= 1; --rho) {
    if (rho < ru) tail += head[rho - 1];
    if (tail >= static_cast<double>(ru - rho + 1) * head[rho - 1]) {
      best = rho;
      best_tail = tail;
    }
  }
  out.rho = static_cast<std::int64_t>(best);
  out.norm_sq = sum_sq_range(head, 0, best - 1) + best_tail * best_tail / static_cast<double>(ru - best + 1);
  return out;
}

namespace {
ProxSolution sweep_with_profile(const SortedProfile& profile, std::int64_t r, double beta, double* out);
}  // namespace

ProxSolution prox_ksupport_sq_sweep(const double* m, std::size_t n, std::int64_t r, double beta, double* out) {
  return sweep_with_profile(SortedProfile(m, n), r, beta, out);
}

bool prox_ksupport_sq_sweep_if_sorted(const double* m, std::size_t n, std::int64_t r, double beta, double* out,
                                      ProxSolution* solution) {
  const SortedProfile profile(m, n, std::nothrow);
  if (!profile.valid()) return false;
  *solution = sweep_with_profile(profile, r, beta, out);
  return true;
}

namespace {

ProxSolution sweep_with_profile(const SortedProfile& profile, std::int64_t r, double beta, double* out) {
  ProxSolution sol;
  const double* m = profile.values();
  const std::size_t n = profile.size();
  const std::size_t p = profile.nnz();
  const std::size_t ru = static_cast<std::size_t>(r);
  const double shrink = shrink_factor(beta);
  if (p == 0) {
    std::fill(out, out + n, 0.0);
    return sol;
  }
  // The input is sorted descending: its zeros are the tail [p, n). They are written as +0.0 (a -0.0
  // input would stay -0.0 under a copy or a scaling).
  if (beta == 0.0) {  // no penalty: a = m (rho as in the limit of a head holding every unit)
    std::copy(m, m + p, out);
    std::fill(out + p, out + n, 0.0);
    sol.rho = static_cast<std::int64_t>(std::min(p + 1, ru));
    sol.rank = static_cast<std::int64_t>(p);
    return sol;
  }
  if (p <= ru) {  // t = 1 on every positive unit: a = m/(1 + beta)
    const double head_sq = scale_and_sum_sq(m, out, 0, p, shrink);
    std::fill(out + p, out + n, 0.0);
    sol.rho = static_cast<std::int64_t>(std::min(p + 1, ru));
    sol.rank = static_cast<std::int64_t>(p);
    sol.objective = beta * shrink * head_sq;
    return sol;
  }
  const Threshold th = locate_threshold(profile, static_cast<double>(ru), beta);
  // One pass over the output: head (shrink), band (common cut), tail (zeros).
  const double head_sq = scale_and_sum_sq(m, out, 0, th.head, shrink);
  double band_term = 0.0;
  std::size_t rank = th.head;
  if (th.active_end > th.head) {
    const double cut = beta / th.tau;
    // band_value two at a time (element-wise: the same values as one at a time)
    const lanes::d2 vcut = lanes::splat(cut), flush = lanes::splat(rounding::kFlush), zero = lanes::splat(0.0);
    lanes::count2 positive = lanes::no_counts();
    std::size_t i = th.head;
    for (; i + 2 <= th.active_end; i += 2) {
      const lanes::d2 v = lanes::load(m + i), a = v - vcut;
      const lanes::d2 value = lanes::keep(lanes::gt(a, flush * v), a);
      lanes::store(out + i, value);
      lanes::tally(positive, lanes::lt(zero, value));
    }
    rank += lanes::total(positive);
    for (; i < th.active_end; ++i) {
      out[i] = band_value(m[i], cut);
      rank += out[i] > 0.0;
    }
    band_term = cut * th.active_sum;  // sum_i beta m_i / tau
  }
  const double tail_sq = scale_and_sum_sq(m, out, th.active_end, n, 0.0);
  std::fill(out + std::max(th.active_end, p), out + n, 0.0);
  sol.rho = static_cast<std::int64_t>(std::min(th.head + 1, ru));
  sol.rank = static_cast<std::int64_t>(rank);
  sol.objective = beta * shrink * head_sq + band_term + tail_sq;
  return sol;
}

}  // namespace

ProxSolution prox_ksupport_sq_search(const double* m, std::size_t n, std::int64_t r, double beta, double* out) {
  ProxSolution sol;
  std::fill(out, out + n, 0.0);
  const std::size_t p = count_positive(m, n);
  if (p == 0) return sol;
  const std::size_t ru = static_cast<std::size_t>(r);
  const double shrink = shrink_factor(beta);
  const double head_weight = beta * shrink;  // beta/(1 + beta)
  // head_sq[k] = sum_{i<k} m_i^2 (forward), tail_sq[k] = sum_{i>=k} m_i^2 (backward): both
  // accumulate non-negative terms, so neither suffers cancellation.
  const std::size_t rho_max = std::min(ru, n);
  std::vector<double> head_sq(rho_max + 1, 0.0), tail_sq(n + 1, 0.0);
  for (std::size_t i = 0; i < rho_max; ++i) head_sq[i + 1] = head_sq[i] + m[i] * m[i];
  for (std::size_t i = n; i-- > 0;) tail_sq[i] = tail_sq[i + 1] + m[i] * m[i];

  // Candidate value Phi(rho, lambda) = beta/(1+beta) sum_{i<rho} m_i^2 + beta S^2/c
  // + sum_{i>lambda} m_i^2; it bounds F(a_{rho,lambda}) from above when the candidate is feasible
  // (a_lambda >= 0 and t_rho = a_rho c / S <= 1), and equals F* at the minimiser.
  //
  // Near-ties: F is only 2-strongly convex, so candidates whose Phi differ by rounding can have
  // values that differ by ~sqrt(eps) * |m|. Among candidates within rounding of the best Phi we
  // therefore prefer one that also satisfies the complementary conditions (unit lambda+1 would not
  // be positive, unit rho-1 is saturated): that one is the minimiser, to rounding.
  const double rel = 1e-12;
  const double tie = 64.0 * std::numeric_limits<double>::epsilon();
  double best = std::numeric_limits<double>::infinity();
  bool best_consistent = false;
  std::size_t best_rho = 1, best_lambda = 0;
  double best_cut = 0.0;
  bool best_head_only = true;
  auto consider = [&](double phi, bool consistent, std::size_t rho, std::size_t lambda, bool head_only, double cut) {
    const double margin = tie * std::max(phi, best);
    const bool better = phi < best - margin || (phi <= best + margin && consistent && !best_consistent) ||
                        (phi < best && consistent == best_consistent);
    if (!better) return;
    best = phi;
    best_consistent = consistent;
    best_rho = rho;
    best_lambda = lambda;
    best_head_only = head_only;
    best_cut = cut;
  };
  // Head-only candidates: a = m/(1+beta) on the first lambda <= r - 1 units.
  for (std::size_t lambda = 1; lambda <= std::min(ru - 1, n); ++lambda) {
    const double phi = head_weight * head_sq[lambda] + tail_sq[lambda];  // lambda <= rho_max
    const bool consistent = lambda == n || m[lambda] == 0.0 || beta == 0.0;
    consider(phi, consistent, lambda + 1, lambda, true, 0.0);
  }
  for (std::size_t rho = 1; rho <= rho_max; ++rho) {
    const double q = static_cast<double>(ru - rho + 1);
    const double head = head_weight * head_sq[rho - 1];
    const double m_rho = m[rho - 1];
    const double m_before = rho > 1 ? m[rho - 2] : std::numeric_limits<double>::infinity();
    double S = 0.0;
    double c = q;  // c = q + beta (lambda - rho + 1), advanced before use
    for (std::size_t lambda = rho; lambda <= n; ++lambda) {
      const double m_lambda = m[lambda - 1];
      S += m_lambda;
      c += beta;
      const double bs = beta * S;
      if (m_lambda * c < bs * (1.0 - rel)) continue;     // a_lambda < 0
      if (m_rho * c > (bs + S) * (1.0 + rel)) continue;  // t_rho > 1
      if (!(S > 0.0)) continue;
      const double phi = head + bs * S / c + tail_sq[lambda];
      if (phi > best * (1.0 + tie)) continue;
      const bool consistent =
          (lambda == n || m[lambda] * c <= bs * (1.0 + rel)) && (rho == 1 || m_before * c >= (bs + S) * (1.0 - rel));
      consider(phi, consistent, rho, lambda, false, bs / c);
    }
  }
  std::size_t rank = 0;
  const std::size_t head_end = best_head_only ? best_lambda : best_rho - 1;
  for (std::size_t i = 0; i < head_end; ++i) {
    out[i] = m[i] * shrink;
    rank += out[i] > 0.0;
  }
  if (!best_head_only) {
    for (std::size_t i = best_rho - 1; i < best_lambda; ++i) {
      out[i] = band_value(m[i], best_cut);
      rank += out[i] > 0.0;
    }
  }
  sol.rho = static_cast<std::int64_t>(std::min(best_rho, ru));
  sol.rank = static_cast<std::int64_t>(rank);
  sol.objective = best;
  return sol;
}

void prox_ksupport_sq_batch(const double* m, std::size_t n, const std::int64_t* r, const double* beta,
                            std::size_t count, double* objective, std::int64_t* rho, std::int64_t* rank, int threads) {
  const SortedProfile profile(m, n);
  const std::size_t p = profile.nnz();
  // Squared sums from both ends, per block, so head and tail sums need no long subtraction.
  const std::size_t B = SortedProfile::kBlock;
  const std::size_t blocks = (p + B - 1) / B;
  std::vector<double> head_blocks(blocks + 1, 0.0), tail_blocks(blocks + 1, 0.0);
  for (std::size_t b = 0; b < blocks; ++b)
    head_blocks[b + 1] = head_blocks[b] + sum_sq_range(m, b * B, std::min(p, (b + 1) * B));
  for (std::size_t b = blocks; b-- > 0;)
    tail_blocks[b] = tail_blocks[b + 1] + sum_sq_range(m, b * B, std::min(p, (b + 1) * B));
  auto head_sq = [&](std::size_t k) {  // sum_{i<k} m_i^2
    const std::size_t b = k / B;
    return head_blocks[b] + sum_sq_range(m, b * B, k);
  };
  auto tail_sq = [&](std::size_t k) {  // sum_{k<=i<p} m_i^2
    const std::size_t b = (k + B - 1) / B;
    return sum_sq_range(m, k, std::min(p, b * B)) + tail_blocks[std::min(b, blocks)];
  };

  auto solve_one = [&](std::size_t j) {
    const std::size_t ru = static_cast<std::size_t>(r[j]);
    const double bj = beta[j];
    const double shrink = shrink_factor(bj);
    if (p == 0) {
      objective[j] = 0.0;
      rho[j] = 1;
      rank[j] = 0;
      return;
    }
    if (p <= ru || bj == 0.0) {
      objective[j] = bj * shrink * head_sq(p);
      rho[j] = static_cast<std::int64_t>(std::min(p + 1, ru));
      rank[j] = static_cast<std::int64_t>(p);
      return;
    }
    const Threshold th = locate_threshold(profile, static_cast<double>(ru), bj);
    double value = bj * shrink * head_sq(th.head) + tail_sq(th.active_end);
    std::size_t positive = th.head;
    if (th.active_end > th.head) {
      const double cut = bj / th.tau;
      value += cut * th.active_sum;
      // band units with m_i > cut keep a positive value
      positive += static_cast<std::size_t>(
          std::partition_point(m + th.head, m + th.active_end, [&](double v) { return band_value(v, cut) > 0.0; }) -
          (m + th.head));
    }
    objective[j] = value;
    rho[j] = static_cast<std::int64_t>(std::min(th.head + 1, ru));
    rank[j] = static_cast<std::int64_t>(positive);
  };

  // Settings are independent: the shared pool hands them out in order; no result depends on it.
  parallel::for_each_index(count, threads, solve_one);
}

}  // namespace structdrop
