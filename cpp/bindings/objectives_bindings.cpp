// Python glue for cpp/objectives.hpp: argument checks, layout handling, GIL release, docstrings.
//
// Schemes arrive as a SchemeParams (MaskScheme._core_params(); bound in scheme_bindings.cpp).
// Arrays are float64 (no dtype conversion: .noconvert()); C- or Fortran-contiguous arrays are
// read in place. X and Y are never copied (a C-ordered X is read as the column-major X^T);
// U and V are copied to column-major only when they are C-ordered (O((a + b) d), documented).
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "objectives.hpp"
#include "register.hpp"

namespace structdrop::bindings {
namespace {

using ColMap = Eigen::Map<const Matrix>;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMap = Eigen::Map<const RowMatrix>;

// A column-major matrix with the same values as the (small) array: always a copy (moments and
// factors, whose size does not grow with N), read through a view of either layout.
Matrix to_matrix(const AnyArray& a, const char* name) {
  require_ndim(a, 2, name);
  require_contiguous(a, name);
  const auto rows = static_cast<Eigen::Index>(a.shape(0)), cols = static_cast<Eigen::Index>(a.shape(1));
  if (is_f_contiguous(a)) return ColMap(a.data(), rows, cols);
  return RowMap(a.data(), rows, cols);
}

// View of a large 2-D array as its column-major transpose when it is C-ordered (no copy), or as
// itself when it is Fortran-ordered. `transposed` reports which.
ColMap view(const AnyArray& a, bool& transposed) {
  const auto rows = static_cast<Eigen::Index>(a.shape(0)), cols = static_cast<Eigen::Index>(a.shape(1));
  if (is_f_contiguous(a)) {
    transposed = false;
    return ColMap(a.data(), rows, cols);
  }
  transposed = true;
  return ColMap(a.data(), cols, rows);
}

DataMoments moments_from_arrays(const AnyArray& gram, const AnyArray& cross, double y_sq_norm) {
  DataMoments m;
  m.gram = to_matrix(gram, "gram");
  m.cross = to_matrix(cross, "cross");
  m.y_sq_norm = y_sq_norm;
  if (m.gram.rows() != m.gram.cols()) throw std::invalid_argument("gram must be square (X X^T, b x b)");
  if (m.cross.cols() != m.gram.rows())
    throw std::invalid_argument("cross (Y X^T) must have as many columns as gram has rows");
  return m;
}

}  // namespace

void register_objectives(py::module_& m) {
  m.def(
      "objective_moments",
      [](const AnyArray& X, const std::optional<AnyArray>& Y) {
        require_ndim(X, 2, "X");
        require_contiguous(X, "X");
        if (Y) {
          require_ndim(*Y, 2, "Y");
          require_contiguous(*Y, "Y");
          if (Y->shape(1) != X.shape(1))
            throw std::invalid_argument("X and Y must have the same number of columns (samples), got " +
                                        std::to_string(X.shape(1)) + " and " + std::to_string(Y->shape(1)));
        }
        DataMoments result;
        {
          bool xt = false, yt = false;
          const ColMap Xv = view(X, xt);
          py::gil_scoped_release release;
          if (Y) {
            const ColMap Yv = view(*Y, yt);
            if (xt && yt) {
              result = compute_moments_transposed(Xv, Yv);
            } else if (!xt && !yt) {
              result = compute_moments(Xv, Yv);
            } else {
              // Mixed layouts: Y (a x N, small a) is the one copied into X's orientation.
              if (xt) {
                const Matrix Yt = Yv.transpose();
                result = compute_moments_transposed(Xv, Yt);
              } else {
                const Matrix Yc = Yv.transpose();
                result = compute_moments(Xv, Yc);
              }
            }
          } else {
            if (xt) {
              const Matrix no_targets(Xv.rows(), 0);  // Y^T with a = 0
              result = compute_moments_transposed(Xv, no_targets);
            } else {
              const Matrix no_targets(0, Xv.cols());
              result = compute_moments(Xv, no_targets);
            }
          }
        }
        return py::make_tuple(to_numpy(result.gram), Y ? py::object(to_numpy(result.cross)) : py::none(),
                              result.y_sq_norm);
      },
      py::arg("X").noconvert(), py::arg("Y").noconvert() = py::none(),
      "Data moments (X X^T, Y X^T, ||Y||_F^2) in one pass over the N samples; (gram, None, 0.0)\n"
      "when Y is None. X (b x N) and Y (a x N) are float64, C- or Fortran-contiguous, read without\n"
      "a copy (except Y when its layout differs from X's: one a x N copy).");

  m.def(
      "scheme_stats",
      [](const SchemeParams& p, std::int64_t d, bool dense_cbar) {
        SchemeStats s;
        {
          py::gil_scoped_release release;
          s = scheme_stats(p, static_cast<std::ptrdiff_t>(d), dense_cbar);
        }
        py::object cbar = s.cbar.size() ? py::object(to_numpy(s.cbar)) : py::none();
        py::object band = s.cbar_band.size() ? py::object(to_numpy(s.cbar_band)) : py::none();
        return py::make_tuple(to_numpy(s.mean), s.beta, cbar, band);
      },
      py::arg("scheme"), py::arg("d"), py::arg("dense_cbar") = true,
      "Statistics of a mask scheme at width d: (mean, beta, cbar, cbar_band). cbar (d x d) and\n"
      "cbar_band (block_size x d, cbar_band[k, i] = C-bar[i, i + k]) are given for overlapping\n"
      "DropBlock only (None otherwise; cbar also None when dense_cbar is False).");

  m.def(
      "objective_terms",
      [](const SchemeParams& p, const AnyArray& gram, const AnyArray& cross, double y_sq_norm, const AnyArray& U,
         const AnyArray& V, bool paper_dropconnect) {
        const DataMoments mo = moments_from_arrays(gram, cross, y_sq_norm);
        const Matrix Um = to_matrix(U, "U"), Vm = to_matrix(V, "V");
        if (Um.cols() != Vm.cols())
          throw std::invalid_argument("U and V must have the same number of columns d, got " +
                                      std::to_string(Um.cols()) + " and " + std::to_string(Vm.cols()));
        double fit = 0.0, reg = 0.0;
        {
          py::gil_scoped_release release;
          const SchemeStats s = scheme_stats(p, static_cast<std::ptrdiff_t>(Um.cols()), false);
          reg = paper_dropconnect ? dropconnect_paper_regularizer(s, mo, Um, Vm) : regularizer(s, mo, Um, Vm);
          fit = fit_term(mo, Um, Vm);
        }
        return py::make_tuple(fit, reg);
      },
      py::arg("scheme"), py::arg("gram").noconvert(), py::arg("cross").noconvert(), py::arg("y_sq_norm"),
      py::arg("U").noconvert(), py::arg("V").noconvert(), py::arg("paper_dropconnect") = false,
      "(fit, regularizer) of the exact deterministic objective from cached moments; cost independent\n"
      "of N. paper_dropconnect=True gives the printed (approximate) DropConnect regulariser instead.\n"
      "U and V are copied to column-major when C-ordered (O((a + b) d)).");
}

}  // namespace structdrop::bindings
