// Python glue for cpp/ksupport.hpp: argument checks, GIL release, docstrings.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "ksupport.hpp"
#include "ksupport_select.hpp"
#include "reduce.hpp"
#include "register.hpp"

namespace structdrop::bindings {
namespace {

using DoubleArray = py::array_t<double, py::array::c_style>;
using IndexArray = py::array_t<std::int64_t, py::array::c_style>;

// The kernels assume finite, non-negative, descending input. The check is one branch-free SIMD
// pass (a branchy loop costs more than the O(n) sweep itself); the culprit is located on failure.
void require_sorted_nonnegative(const DoubleArray& values, const char* name) {
  require_ndim(values, 1, name);
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
  if (search)
    require_sorted_nonnegative(m, "m");  // the sweep checks m in its first pass
  else
    require_ndim(m, 1, "m");
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

// The selection kernels write into a caller-owned array: same dtype, same shape, no overlap.
template <class T>
using Array = py::array_t<T, py::array::c_style>;

// The kernels load whole words (SSE2 too): an unaligned view of a byte buffer is rejected.
template <class T>
void require_aligned(const Array<T>& a, const char* name) {
  if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
    throw std::invalid_argument(std::string(name) + " must be aligned to its element size");
}

template <class T>
void require_output(const Array<T>& x, Array<T>& out) {
  require_aligned(x, "the input");
  require_aligned(out, "out");
  if (out.ndim() != x.ndim()) throw std::invalid_argument("out must have the shape of the input");
  for (py::ssize_t d = 0; d < x.ndim(); ++d)
    if (out.shape(d) != x.shape(d)) throw std::invalid_argument("out must have the shape of the input");
  if (!out.writeable()) throw std::invalid_argument("out must be writeable");
  const auto* a = reinterpret_cast<const char*>(x.data());
  const auto* b = reinterpret_cast<const char*>(out.data());
  const auto bytes = static_cast<std::size_t>(x.size()) * sizeof(T);
  if (bytes > 0 && a < b + bytes && b < a + bytes) throw std::invalid_argument("out must not overlap the input");
}

template <class T>
py::tuple prox_select(const Array<T>& x, std::int64_t r, double beta, Array<T>& out) {
  require_ndim(x, 1, "x");
  require_r(r);
  require_beta(beta);
  require_output(x, out);
  ProxSolution sol;
  {
    const T* in = x.data();
    T* dest = out.mutable_data();
    const auto n = static_cast<std::size_t>(x.shape(0));
    py::gil_scoped_release release;
    SelectWorkspace ws;
    sol = prox_ksupport_sq_select(in, n, r, beta, dest, ws);
  }
  return py::make_tuple(sol.rho, sol.rank, sol.objective);
}

// (norm_sq, rho) of a 1-D array by `kernel`, with the GIL released.
template <class T, class Kernel>
py::tuple norm_tuple(const Array<T>& x, std::int64_t r, Kernel kernel) {
  require_r(r);
  KSupportNorm result;
  {
    const T* in = x.data();
    const auto n = static_cast<std::size_t>(x.shape(0));
    py::gil_scoped_release release;
    result = kernel(in, n, r);
  }
  return py::make_tuple(result.norm_sq, result.rho);
}

template <class T>
py::tuple norm_select(const Array<T>& x, std::int64_t r) {
  require_ndim(x, 1, "x");
  require_aligned(x, "x");
  return norm_tuple(x, r, &ksupport_norm_sq_select<T>);
}

template <class T>
py::tuple prox_rows(const Array<T>& x, std::int64_t r, double beta, Array<T>& out, int threads) {
  require_ndim(x, 2, "M");
  require_r(r);
  require_beta(beta);
  require_output(x, out);
  const auto rows = static_cast<std::size_t>(x.shape(0)), n = static_cast<std::size_t>(x.shape(1));
  DoubleArray objective(static_cast<py::ssize_t>(rows));
  IndexArray rho(static_cast<py::ssize_t>(rows)), rank(static_cast<py::ssize_t>(rows));
  std::int64_t bad_row = -1;
  {
    const T* in = x.data();
    T* dest = out.mutable_data();
    double* obj = objective.mutable_data();
    std::int64_t* rho_data = rho.mutable_data();
    std::int64_t* rank_data = rank.mutable_data();
    py::gil_scoped_release release;
    prox_ksupport_sq_rows(in, rows, n, r, beta, dest, obj, rho_data, rank_data, threads, &bad_row);
  }
  return py::make_tuple(objective, rho, rank, bad_row);
}

template <class T>
void register_select(py::module_& m) {
  m.def("prox_select", &prox_select<T>, py::arg("x").noconvert(), py::arg("r"), py::arg("beta"),
        py::arg("out").noconvert(),
        "argmin_a ||m - a||^2 + beta ||a||_(r)^2 with m = |x| in any order, written as sign(x) a into\n"
        "out (same dtype and shape, no overlap). Expected O(n) selection; the sweep on sorted input.\n"
        "Returns (rho, rank, objective).");
  m.def("ksupport_norm_sq_select", &norm_select<T>, py::arg("x").noconvert(), py::arg("r"),
        "||x||_(r)^2 of a vector in any order and with any signs by partial selection, O(n + r log r).\n"
        "Returns (norm_sq, rho); norm_sq is inf when it overflows.");
  m.def("prox_rows", &prox_rows<T>, py::arg("M").noconvert(), py::arg("r"), py::arg("beta"), py::arg("out").noconvert(),
        py::arg("threads") = 0,
        "The prox of every row of M into out, rows split between threads (GIL released).\n"
        "Returns (objective, rho, rank, bad_row): bad_row is the first row with NaN/inf, or -1.");
}

}  // namespace

void register_ksupport(py::module_& m) {
  register_select<double>(m);
  register_select<float>(m);
  m.def(
      "ksupport_norm_sq_sorted",
      [](const DoubleArray& s, std::int64_t r) {
        require_sorted_nonnegative(s, "s");
        return norm_tuple(s, r, &ksupport_norm_sq_sorted);
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
        require_ndim(mm, 1, "m");  // values: checked by the kernel
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
