// The squared spectral r-support norm (Theorem 6, corrected) and the proximal operator of its
// scaled square (Theorem 7, corrected), on singular values sorted in descending order.
//
// Conventions: inputs are non-negative and sorted descending (s[0] >= s[1] >= ... >= 0); rho and
// the rank are 1-based counts as in the paper; r >= 1. Callers validate, except that the sweep
// and the batch check m themselves (fused into their first pass) and throw std::invalid_argument.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>

namespace structdrop {

struct KSupportNorm {
  std::int64_t rho = 1;  // rho* of the corrected Theorem 6 (1-based, in 1..r)
  double norm_sq = 0.0;  // ||s||_(r)^2
};

// ||s||_(r)^2 = sum_{i<rho} s_i^2 + T_rho^2 / (r - rho + 1), T_rho = sum_{i>=rho} s_i, where rho is
// the unique index in 1..r with s_{rho-1} > T_rho / (r - rho + 1) >= s_rho (s_0 = +inf).
// The printed paper picks rho maximising the bracket instead; that is wrong (I_3, r = 2).
// O(n) time, O(1) extra memory.
KSupportNorm ksupport_norm_sq_sorted(const double* s, std::size_t n, std::int64_t r);

// The same from the `count` largest values only: head[0] >= ... >= head[count-1] > 0, and
// rest_sum = the sum of all the other (smaller) positive values. Needs count = min(r, nnz); with
// count < r the head must hold every positive value (rest_sum = 0). O(count) time.
KSupportNorm ksupport_norm_sq_head(const double* head, std::size_t count, std::int64_t r, double rest_sum);

struct ProxSolution {
  std::int64_t rho = 1;    // 1 + number of leading values that are only shrunk, a_i = m_i/(1+beta)
  std::int64_t rank = 0;   // number of non-zero a_i
  double objective = 0.0;  // ||m - a||^2 + beta ||a||_(r)^2 at the minimiser
};

// argmin_a ||m - a||^2 + beta ||a||_(r)^2 for sorted m, by the breakpoint sweep:
// a_i = m_i t_i / (t_i + beta), t_i = clip(m_i tau - beta, 0, 1), sum t_i = r.
// Writes the n values to `out` (may not alias m). O(n) time, O(n / 64) extra memory.
ProxSolution prox_ksupport_sq_sweep(const double* m, std::size_t n, std::int64_t r, double beta, double* out);

// The sweep when m is finite, non-negative and descending; returns false (writing nothing) otherwise.
// The order check is fused with the sweep's first pass and stops at the first offending block of
// 64 values, so a caller can try it on input of unknown order at almost no cost.
bool prox_ksupport_sq_sweep_if_sorted(const double* m, std::size_t n, std::int64_t r, double beta, double* out,
                                      ProxSolution* solution);

// The same minimiser by the literal Theorem 7 scan over (rho, lambda), with rho in 1..r (the
// printed paper's 1..r-1 misses the optimum). O(1) per candidate with prefix sums: O(n r) time,
// O(n) extra memory.
ProxSolution prox_ksupport_sq_search(const double* m, std::size_t n, std::int64_t r, double beta, double* out);

// Many (r, beta) settings against one sorted m: objective, rho and rank of each minimiser
// (no values). Settings are split between `threads` worker threads (<= 0: hardware concurrency);
// each result is independent of the thread count. After O(n) set-up, each setting costs
// O(log(n)^2 + number of units strictly inside the threshold band).
void prox_ksupport_sq_batch(const double* m, std::size_t n, const std::int64_t* r, const double* beta,
                            std::size_t count, double* objective, std::int64_t* rho, std::int64_t* rank, int threads);

}  // namespace structdrop
