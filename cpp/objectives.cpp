// Exact deterministic objectives of dropout-style training from the data moments.
//
// With W = U V^T and the moments X X^T, Y X^T, ||Y||^2:
//   fit          ||Y - U V^T X||^2 = ||Y||^2 - 2 <Y X^T, W> + <W X X^T, W>
//   dropout      beta sum_i ||u_i||^2 v_i^T (X X^T) v_i                       (eq. 2, r = 1)
//   dropblock    beta sum_blocks ||U_i V_i^T X||^2                             (Lemma 1, eq. 5)
//   overlapping  <C-bar, U^T U (.) V^T X X^T V>, C-bar banded                  (Lemma 10, eq. 18)
//   dropconnect  beta sum_i ||u_i||^2 sum_j V_ji^2 (X X^T)_jj                  (corrected Thm 13)
// Nothing here touches the N samples once the moments exist.
#include "objectives.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace structdrop {
namespace {

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

void require_theta(double theta) {
  require(std::isfinite(theta) && theta > 0.0 && theta <= 1.0,
          "theta must lie in (0, 1], got " + std::to_string(theta));
}

// Number of seed positions j in 0..d-bs whose block j..j+bs-1 covers unit i.
std::ptrdiff_t seed_window_lo(std::ptrdiff_t i, std::ptrdiff_t bs) { return std::max<std::ptrdiff_t>(0, i - bs + 1); }
std::ptrdiff_t seed_window_hi(std::ptrdiff_t i, std::ptrdiff_t bs, std::ptrdiff_t d) { return std::min(i, d - bs); }

void check_shapes(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V) {
  const std::ptrdiff_t d = stats.width;
  require(U.cols() == d, "U must have d = " + std::to_string(d) + " columns, got " + std::to_string(U.cols()));
  require(V.cols() == d, "V must have d = " + std::to_string(d) + " columns, got " + std::to_string(V.cols()));
  const std::ptrdiff_t b = moments.gram.rows();
  require(moments.gram.cols() == b, "the Gram matrix X X^T must be square");
  require(V.rows() == b,
          "V must have b = " + std::to_string(b) + " rows (the rows of X), got " + std::to_string(V.rows()));
  require(moments.cross.cols() == b, "the cross moment Y X^T must have b = " + std::to_string(b) + " columns");
  require(U.rows() == moments.cross.rows(), "U must have a = " + std::to_string(moments.cross.rows()) +
                                                " rows (the rows of Y), got " + std::to_string(U.rows()));
}

// sum_{i in block} sum_{j in block} (u_i . u_j)(v_i^T gram v_j) = ||U_blk V_blk^T X||^2 for the
// block of columns [start, start + len), given GV = gram V. Picks the cheaper of the two forms.
double block_energy(const MatrixRef& U, const MatrixRef& V, const Matrix& GV, const Matrix& gram, std::ptrdiff_t start,
                    std::ptrdiff_t len) {
  const std::ptrdiff_t a = U.rows(), b = V.rows();
  const double cost_inner = static_cast<double>(len) * len * (a + b);
  const double cost_outer = static_cast<double>(a) * b * len + static_cast<double>(a) * b * b;
  if (cost_inner <= cost_outer) {
    const Matrix uu = U.middleCols(start, len).transpose() * U.middleCols(start, len);
    const Matrix vv = V.middleCols(start, len).transpose() * GV.middleCols(start, len);
    return uu.cwiseProduct(vv).sum();
  }
  const Matrix W = U.middleCols(start, len) * V.middleCols(start, len).transpose();  // a x b
  return (W * gram).cwiseProduct(W).sum();
}

}  // namespace

DataMoments compute_moments(const MatrixRef& X, const MatrixRef& Y) {
  require(X.cols() == Y.cols(), "X and Y must have the same number of columns (samples), got " +
                                    std::to_string(X.cols()) + " and " + std::to_string(Y.cols()));
  DataMoments m;
  const std::ptrdiff_t b = X.rows();
  m.gram = Matrix::Zero(b, b);
  m.gram.selfadjointView<Eigen::Lower>().rankUpdate(X);
  m.gram.triangularView<Eigen::StrictlyUpper>() = m.gram.transpose();
  m.cross = Y * X.transpose();
  m.y_sq_norm = Y.squaredNorm();
  return m;
}

DataMoments compute_moments_transposed(const MatrixRef& Xt, const MatrixRef& Yt) {
  require(Xt.rows() == Yt.rows(), "X and Y must have the same number of samples, got " + std::to_string(Xt.rows()) +
                                      " and " + std::to_string(Yt.rows()));
  DataMoments m;
  const std::ptrdiff_t b = Xt.cols();
  m.gram = Matrix::Zero(b, b);
  m.gram.selfadjointView<Eigen::Lower>().rankUpdate(Xt.transpose());
  m.gram.triangularView<Eigen::StrictlyUpper>() = m.gram.transpose();
  m.cross = Yt.transpose() * Xt;
  m.y_sq_norm = Yt.squaredNorm();
  return m;
}

SchemeStats scheme_stats(const SchemeParams& params, std::ptrdiff_t width) { return scheme_stats(params, width, true); }

SchemeStats scheme_stats(const SchemeParams& params, std::ptrdiff_t width, bool dense_cbar) {
  require(width >= 1, "the width d must be >= 1, got " + std::to_string(width));
  SchemeStats s;
  s.params = params;
  s.width = width;
  const std::ptrdiff_t d = width;
  switch (params.kind) {
    case SchemeKind::none:
      s.mean = Vector::Ones(d);
      s.beta = 0.0;
      break;
    case SchemeKind::dropout:
    case SchemeKind::dropconnect:
      require_theta(params.theta);
      s.mean = Vector::Constant(d, params.theta);
      s.beta = (1.0 - params.theta) / params.theta;
      break;
    case SchemeKind::dropblock:
      require_theta(params.theta);
      require(params.block_size >= 1, "block_size must be >= 1, got " + std::to_string(params.block_size));
      require(d % params.block_size == 0,
              "block_size must divide d (non-overlapping blocks), got d = " + std::to_string(d) +
                  ", block_size = " + std::to_string(params.block_size));
      s.mean = Vector::Constant(d, params.theta);
      s.beta = (1.0 - params.theta) / params.theta;
      break;
    case SchemeKind::overlapping_dropblock: {
      const double gamma = params.gamma;
      const std::ptrdiff_t bs = params.block_size;
      require(std::isfinite(gamma) && gamma >= 0.0 && gamma < 1.0,
              "gamma must lie in [0, 1), got " + std::to_string(gamma));
      require(bs >= 1, "block_size must be >= 1, got " + std::to_string(bs));
      require(bs <= d, "block_size must be <= d (every block lies inside the layer), got d = " + std::to_string(d) +
                           ", block_size = " + std::to_string(bs));
      const double log_keep = std::log1p(-gamma);  // log(1 - gamma) <= 0
      s.mean.resize(d);
      for (std::ptrdiff_t i = 0; i < d; ++i) {
        const std::ptrdiff_t w = seed_window_hi(i, bs, d) - seed_window_lo(i, bs) + 1;
        s.mean[i] = std::exp(static_cast<double>(w) * log_keep);
      }
      s.beta = 0.0;
      // C-bar(i, j) = P(z_i z_j = 1)/(mu_i mu_j) - 1 = (1 - gamma)^(-|W(i) n W(j)|) - 1.
      s.cbar_band = Matrix::Zero(bs, d);
      for (std::ptrdiff_t i = 0; i < d; ++i) {
        const std::ptrdiff_t hi_i = seed_window_hi(i, bs, d);
        for (std::ptrdiff_t k = 0; k < bs && i + k < d; ++k) {
          const std::ptrdiff_t j = i + k;
          const std::ptrdiff_t shared = hi_i - seed_window_lo(j, bs) + 1;  // W(i) n W(j) for i <= j
          if (shared > 0) s.cbar_band(k, i) = std::expm1(-static_cast<double>(shared) * log_keep);
        }
      }
      if (dense_cbar) {
        s.cbar = Matrix::Zero(d, d);
        for (std::ptrdiff_t i = 0; i < d; ++i)
          for (std::ptrdiff_t k = 0; k < bs && i + k < d; ++k) {
            s.cbar(i, i + k) = s.cbar_band(k, i);
            s.cbar(i + k, i) = s.cbar_band(k, i);
          }
      }
      break;
    }
    default:
      throw std::invalid_argument("unknown scheme kind " + std::to_string(static_cast<int>(params.kind)));
  }
  return s;
}

double fit_term(const DataMoments& moments, const MatrixRef& U, const MatrixRef& V) {
  const std::ptrdiff_t b = moments.gram.rows();
  require(moments.gram.cols() == b, "the Gram matrix X X^T must be square");
  require(V.rows() == b,
          "V must have b = " + std::to_string(b) + " rows (the rows of X), got " + std::to_string(V.rows()));
  require(U.cols() == V.cols(), "U and V must have the same number of columns d, got " + std::to_string(U.cols()) +
                                    " and " + std::to_string(V.cols()));
  require(moments.cross.cols() == b && U.rows() == moments.cross.rows(),
          "U must have a = " + std::to_string(moments.cross.rows()) + " rows (the rows of Y), got " +
              std::to_string(U.rows()));
  const Matrix W = U * V.transpose();  // a x b
  const double value =
      moments.y_sq_norm - 2.0 * moments.cross.cwiseProduct(W).sum() + (W * moments.gram).cwiseProduct(W).sum();
  // The expansion can round to a tiny negative number at an exact fit.
  return std::max(0.0, value);
}

double regularizer(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V) {
  check_shapes(stats, moments, U, V);
  const std::ptrdiff_t d = stats.width;
  const SchemeKind kind = stats.params.kind;
  if (kind == SchemeKind::none) return 0.0;
  if (kind == SchemeKind::dropconnect) {
    // beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2 with ||x_j||^2 = (X X^T)_jj.
    const Vector row_sq = moments.gram.diagonal();
    double total = 0.0;
    for (std::ptrdiff_t i = 0; i < d; ++i) total += U.col(i).squaredNorm() * V.col(i).cwiseAbs2().dot(row_sq);
    return stats.beta * total;
  }
  const Matrix GV = moments.gram * V;  // b x d: column i is X X^T v_i
  switch (kind) {
    case SchemeKind::dropout: {
      double total = 0.0;
      for (std::ptrdiff_t i = 0; i < d; ++i) total += U.col(i).squaredNorm() * V.col(i).dot(GV.col(i));
      return stats.beta * total;
    }
    case SchemeKind::dropblock: {
      const std::ptrdiff_t bs = stats.params.block_size;
      double total = 0.0;
      if (bs == 1) {
        for (std::ptrdiff_t i = 0; i < d; ++i) total += U.col(i).squaredNorm() * V.col(i).dot(GV.col(i));
      } else {
        for (std::ptrdiff_t start = 0; start < d; start += bs) total += block_energy(U, V, GV, moments.gram, start, bs);
      }
      return stats.beta * total;
    }
    case SchemeKind::overlapping_dropblock: {
      const Matrix& band = stats.cbar_band;
      require(band.rows() == stats.params.block_size && band.cols() == d,
              "SchemeStats of overlapping_dropblock lacks its C-bar band (use scheme_stats)");
      double diag = 0.0, off = 0.0;
      for (std::ptrdiff_t i = 0; i < d; ++i) diag += band(0, i) * U.col(i).squaredNorm() * V.col(i).dot(GV.col(i));
      for (std::ptrdiff_t k = 1; k < band.rows(); ++k)
        for (std::ptrdiff_t i = 0; i + k < d; ++i) {
          const double c = band(k, i);
          if (c != 0.0) off += c * U.col(i).dot(U.col(i + k)) * V.col(i).dot(GV.col(i + k));
        }
      return diag + 2.0 * off;
    }
    default:
      throw std::invalid_argument("unknown scheme kind " + std::to_string(static_cast<int>(kind)));
  }
}

double deterministic_objective(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U,
                               const MatrixRef& V) {
  const double reg = regularizer(stats, moments, U, V);  // checks all shapes first
  return fit_term(moments, U, V) + reg;
}

double dropconnect_paper_regularizer(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U,
                                     const MatrixRef& V) {
  require(stats.params.kind == SchemeKind::dropconnect,
          "dropconnect_paper_regularizer needs DropConnect scheme statistics");
  check_shapes(stats, moments, U, V);
  const Matrix GV = moments.gram * V;
  double total = 0.0;
  for (std::ptrdiff_t i = 0; i < stats.width; ++i) total += U.col(i).squaredNorm() * V.col(i).dot(GV.col(i));
  return stats.beta * total;
}

}  // namespace structdrop
