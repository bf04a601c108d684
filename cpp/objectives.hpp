// Exact deterministic objectives of dropout-style training (Lemma 1, Lemma 10, the corrected
// DropConnect identity, overlapping DropBlock through its exact characteristic matrix).
//
// Everything here works from the data moments X X^T, Y X^T and ||Y||^2, so an objective costs
// nothing that grows with the number of samples N once the moments are cached.
// Pure C++: no Python types.
#pragma once

#include <Eigen/Dense>
#include <cstddef>

namespace structdrop {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Vector = Eigen::VectorXd;
using MatrixRef = Eigen::Ref<const Matrix>;

enum class SchemeKind : int {
  none = 0,
  dropout = 1,                // Bernoulli(theta) per hidden unit
  dropblock = 2,              // Bernoulli(theta) per block of block_size consecutive units
  overlapping_dropblock = 3,  // seeds j = 0..d-block_size ~ Ber(gamma), each drops units j..j+bs-1
  dropconnect = 4,            // Bernoulli(theta) per entry of V (b x d)
};

// Parameters of a mask distribution; validated by scheme_stats().
struct SchemeParams {
  SchemeKind kind = SchemeKind::none;
  double theta = 1.0;             // retain probability: dropout, dropblock, dropconnect
  std::ptrdiff_t block_size = 1;  // dropblock, overlapping_dropblock
  double gamma = 0.0;             // seed probability: overlapping_dropblock
};

// Sufficient statistics of the data X (b x N) and targets Y (a x N).
struct DataMoments {
  Matrix gram;             // X X^T, b x b
  Matrix cross;            // Y X^T, a x b
  double y_sq_norm = 0.0;  // ||Y||_F^2
};

// One O((a + b) b N) pass over the data.
DataMoments compute_moments(const MatrixRef& X, const MatrixRef& Y);

// What a scheme needs at hidden width d, computed once.
struct SchemeStats {
  SchemeParams params;
  std::ptrdiff_t width = 0;  // d
  Vector mean;               // E[z_i] (d); for dropconnect the (uniform) mean of each entry of V's mask
  double beta = 0.0;         // (1 - theta)/theta where the scheme has one theta, 0 otherwise
  Matrix cbar;               // C-bar = diag(mean)^-1 Cov(z) diag(mean)^-1 (d x d), only for overlapping_dropblock
  // Added: the band of C-bar that can be non-zero for overlapping_dropblock (block_size x d):
  // cbar_band(k, i) = C-bar(i, i + k) for 0 <= k < block_size, i + k < d (0 elsewhere).
  // C-bar(i, j) = (1 - gamma)^(-|W(i) n W(j)|) - 1 vanishes for |i - j| >= block_size, so the
  // regulariser costs O(block_size (a + b) d) from this band; deterministic_objective uses it.
  Matrix cbar_band;
};

// Throws std::invalid_argument on bad parameters (theta outside (0, 1], block_size not dividing d, ...).
SchemeStats scheme_stats(const SchemeParams& params, std::ptrdiff_t width);

// Added: as above; with dense_cbar = false the d x d `cbar` of overlapping_dropblock is left
// empty (only `cbar_band` is filled), so that large widths need O(block_size d) memory, not O(d^2).
SchemeStats scheme_stats(const SchemeParams& params, std::ptrdiff_t width, bool dense_cbar);

// Added: moments from the transposes Xt = X^T (N x b) and Yt = Y^T (N x a), i.e. from C-ordered
// (row-major) X and Y viewed without a copy. Same result as compute_moments(X, Y).
DataMoments compute_moments_transposed(const MatrixRef& Xt, const MatrixRef& Yt);

// ||Y - U V^T X||_F^2 from the moments.
double fit_term(const DataMoments& moments, const MatrixRef& U, const MatrixRef& V);

// E over masks of the stochastic loss minus the fit term: the scheme's exact regulariser.
double regularizer(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V);

// fit_term + regularizer: the exact expectation of the stochastic loss over the masks.
double deterministic_objective(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U,
                               const MatrixRef& V);

// Added: the DropConnect regulariser AS PRINTED in the paper (Theorem 13 / Corollary 14),
// beta sum_i ||u_i||^2 ||X^T v_i||^2 -- the Dropout form. It is NOT the expectation of the
// DropConnect loss unless X X^T is diagonal (the exact one is regularizer() with dropconnect:
// beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2). Provided only to show the difference.
// Requires stats.params.kind == dropconnect.
double dropconnect_paper_regularizer(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U,
                                     const MatrixRef& V);

}  // namespace structdrop
