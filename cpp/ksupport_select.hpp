// The k-support norm and prox for input in any order, with any signs, in float or double, without
// sorting: expected O(n) by randomised selection over the prox's breakpoints, O(n + r log r) for
// the norm by partial selection. Pure C++: no Python types.
//
// Scaling: every entry point rescales by a power of two (exact) so that the largest magnitude
// lies in [1, 2) before squaring or dividing; inputs from 1e-300 to 1e300 therefore work, and
// results that do not fit in a double come back as +inf (the caller reports it). Sums are
// accumulated in double for float input. Non-finite input throws std::invalid_argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ksupport.hpp"

namespace structdrop {

// Scratch memory of the selection: two buffers of active magnitudes (at most n values each,
// typically a few percent of n) and the breakpoints of the last small round. Reusing one across
// calls (as the batch does, one per thread) saves the allocations.
// A breakpoint of one unit with scaled magnitude m: tau = beta/m where it starts (t > 0 beyond) or
// tau = (1 + beta)/m where it saturates (t = 1 from there on).
struct SelectBreakpoint {
  double tau;
  bool saturates;
  double m;
};

struct SelectWorkspace {
  std::vector<double> current, next;
  std::vector<SelectBreakpoint> ends;
};

// argmin_a ||m - a||^2 + beta ||a||_(r)^2 with m = |x| in any order, written as out_i =
// sign(x_i) a_i (out must not overlap x). The threshold tau with sum_i clip(m_i tau - beta, 0, 1)
// = r is found by randomised selection over the breakpoints beta/m_i and (1 + beta)/m_i: each round
// places two pivots from a sample, keeps (in one pass) the units whose breakpoints lie between
// them, carries the sums of the others, and evaluates the piecewise-linear sum at both pivots from
// those. The pivots come from a fixed-seed generator and every sum runs in a fixed order
// (cpp/ksupport_partition.hpp), so results are reproducible bit for bit, on every build.
// Non-negative float64 input that is already sorted descending goes to the O(n) sweep instead
// (detected inside the sweep's first pass, which stops at the first out-of-order block).
// Expected O(n) time; extra memory: the workspace (at most n doubles, typically a few percent).
// The objective is in the input's units (+inf if it overflows).
template <class T>
ProxSolution prox_ksupport_sq_select(const T* x, std::size_t n, std::int64_t r, double beta, T* out,
                                     SelectWorkspace& workspace);

// ||x||_(r)^2 and rho* (corrected Theorem 6) for x in any order and with any signs: selects the
// r largest magnitudes (std::nth_element), sorts only those. O(n + r log r) time, one copy of the
// non-zero magnitudes as doubles. norm_sq is +inf if it overflows.
template <class T>
KSupportNorm ksupport_norm_sq_select(const T* x, std::size_t n, std::int64_t r);

// The prox of every row of a row-major rows x n matrix (same r and beta), rows split between
// `threads` threads (<= 0: all cores). Each row is computed exactly as prox_ksupport_sq_select
// computes it alone, so the results do not depend on the thread count. A row with NaN or inf gets
// bad_row set to its index (the smallest such index) and is left unspecified; bad_row = -1 otherwise.
template <class T>
void prox_ksupport_sq_rows(const T* x, std::size_t rows, std::size_t n, std::int64_t r, double beta, T* out,
                           double* objective, std::int64_t* rho, std::int64_t* rank, int threads,
                           std::int64_t* bad_row);

}  // namespace structdrop
