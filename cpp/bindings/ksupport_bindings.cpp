// Python glue for cpp/ksupport.hpp: argument checks, GIL release, docstrings.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "ksupport.hpp"
#include "reduce.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace structdrop::bindings {
namespace {

using DoubleArray = py::array_t<double, py::array::c_style>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style>;

// The kernels assume finite, non-negative, descending input. The check is one branch-free SIMD
// pass (a branchy loop costs more than the O(n) sweep itself); the culprit is located on failure.
void require_sorted_nonnegative(const DoubleArray& values, const char* name) {
  if (values.ndim() != 1) throw std::invalid_argument(std::string(name) + " must be 1-D");
  const double* v = values.data();
  const auto n = static_cast<std::size_t>(values.shape(0));
  if (reduce::is_descending_nonnegative_finite(v, n)) return;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) throw std::invalid_argument(std::string(name) + " contains NaN or inf");
    if (v[i] < 0.0) throw std::invalid_argument(std::string(name) + " must be non-negative");
    if (i > 0 && v[i] > v[i - 1])
      throw std::invalid_argument(std::string(name) + " must be sorted in descending order");
  }
}

void require_r(std::int64_t r) {
  if (r < 1) throw std::invalid_argument("r must be >= 1, got " + std::to_string(r));
}

void require_beta(double beta) {
  if (!std::isfinite(beta) || beta < 0.0)
    throw std::invalid_argument("beta must be finite and >= 0, got " + std::to_string(beta));
}

py::tuple prox(const DoubleArray& m, std::int64_t r, double beta, bool search) {
  if (search) require_sorted_nonnegative(m, "m");  // the sweep checks m in its first pass
  else if (m.ndim() != 1) throw std::invalid_argument("m must be 1-D");
  require_r(r);
  require_beta(beta);
  const auto n = static_cast<std::size_t>(m.shape(0));
  DoubleArray values(static_cast<py::ssize_t>(n));
  ProxSolution sol;
  {
    const double* in = m.data();
    double* out = values.mutable_data();
    py::gil_scoped_release release;
    sol = search ? prox_ksupport_sq_search(in, n, r, beta, out) : prox_ksupport_sq_sweep(in, n, r, beta, out);
  }
  return py::make_tuple(values, sol.rho, sol.rank, sol.objective);
}

}  // namespace

void register_ksupport(py::module_& m) {
  m.def(
      "ksupport_norm_sq_sorted",
      [](const DoubleArray& s, std::int64_t r) {
        require_sorted_nonnegative(s, "s");
        require_r(r);
        KSupportNorm result;
        {
          const double* data = s.data();
          const auto n = static_cast<std::size_t>(s.shape(0));
          py::gil_scoped_release release;
          result = ksupport_norm_sq_sorted(data, n, r);
        }
        return py::make_tuple(result.norm_sq, result.rho);
      },
      py::arg("s").noconvert(), py::arg("r"),
      "Squared spectral r-support norm of descending non-negative s (corrected Theorem 6).\n"
      "Returns (norm_sq, rho). No copy: s must be C-contiguous float64.");

  m.def(
      "prox_sweep", [](const DoubleArray& mm, std::int64_t r, double beta) { return prox(mm, r, beta, false); },
      py::arg("m").noconvert(), py::arg("r"), py::arg("beta"),
      "argmin_a ||m - a||^2 + beta ||a||_(r)^2 for descending m by the O(n) breakpoint sweep.\n"
      "Returns (values, rho, rank, objective).");

  m.def(
      "prox_search", [](const DoubleArray& mm, std::int64_t r, double beta) { return prox(mm, r, beta, true); },
      py::arg("m").noconvert(), py::arg("r"), py::arg("beta"),
      "The same minimiser by the literal Theorem 7 scan over (rho, lambda), rho in 1..r; O(n r).\n"
      "Returns (values, rho, rank, objective).");

  m.def(
      "prox_batch",
      [](const DoubleArray& mm, const IndexArray& r, const DoubleArray& beta, int threads) {
        if (mm.ndim() != 1) throw std::invalid_argument("m must be 1-D");  // values: checked by the kernel
        if (r.ndim() != 1 || beta.ndim() != 1 || r.shape(0) != beta.shape(0))
          throw std::invalid_argument("r and beta must be 1-D arrays of the same length");
        const auto count = static_cast<std::size_t>(r.shape(0));
        for (std::size_t j = 0; j < count; ++j) {
          require_r(r.data()[j]);
          require_beta(beta.data()[j]);
        }
        DoubleArray objective(static_cast<py::ssize_t>(count));
        IndexArray rho(static_cast<py::ssize_t>(count)), rank(static_cast<py::ssize_t>(count));
        {
          const double* m_data = mm.data();
          const auto n = static_cast<std::size_t>(mm.shape(0));
          const std::int64_t* r_data = r.data();
          const double* beta_data = beta.data();
          double* obj = objective.mutable_data();
          std::int64_t* rho_data = rho.mutable_data();
          std::int64_t* rank_data = rank.mutable_data();
          py::gil_scoped_release release;
          prox_ksupport_sq_batch(m_data, n, r_data, beta_data, count, obj, rho_data, rank_data, threads);
        }
        return py::make_tuple(objective, rho, rank);
      },
      py::arg("m").noconvert(), py::arg("r").noconvert(), py::arg("beta").noconvert(), py::arg("threads") = 0,
      "Objective, rho and rank of the prox for many (r, beta) settings against one descending m,\n"
      "in `threads` threads (0: all cores). Returns (objective, rho, rank).");
}

}  // namespace structdrop::bindings
