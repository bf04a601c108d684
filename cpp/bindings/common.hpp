// Glue shared by the binding files of cpp/bindings/: array aliases, shape checks and conversions
// between Eigen/std::vector results and NumPy arrays. One copy of each, so every binding reports
// a bad argument with the same words. The kernels in cpp/ never include this header.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "objectives.hpp"  // Matrix, Vector

namespace structdrop::bindings {

namespace py = pybind11;

// float64 in any layout (the dtype is enforced by the argument's .noconvert()).
using AnyArray = py::array_t<double, 0>;
// float64 column-major: the SGD engine reads samples and factors as columns.
using FArray = py::array_t<double, py::array::f_style>;

inline bool is_f_contiguous(const py::array& a) { return (a.flags() & py::array::f_style) != 0; }
inline bool is_c_contiguous(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

// ValueError "<name> must be <ndim>-D, got <k>-D" (pybind11 maps std::invalid_argument to ValueError).
inline void require_ndim(const py::array& a, py::ssize_t ndim, const char* name) {
  if (a.ndim() != ndim)
    throw std::invalid_argument(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                                std::to_string(a.ndim()) + "-D");
}

inline void require_contiguous(const py::array& a, const char* name) {
  if (!is_c_contiguous(a) && !is_f_contiguous(a))
    throw std::invalid_argument(std::string(name) + " must be C- or Fortran-contiguous");
}

// A new Fortran-ordered float64 array with M's values.
inline FArray to_numpy(const Matrix& M) {
  FArray out({M.rows(), M.cols()});
  std::copy(M.data(), M.data() + M.size(), out.mutable_data());
  return out;
}

// New 1-D arrays with v's values.
inline py::array_t<double> to_numpy(const Vector& v) {
  py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.data(), v.data() + v.size(), out.mutable_data());
  return out;
}

inline py::array_t<double> to_numpy(const std::vector<double>& v) {
  py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

inline py::array_t<std::int64_t> to_numpy(const std::vector<long long>& v) {
  py::array_t<std::int64_t> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace structdrop::bindings
