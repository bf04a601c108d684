// Python glue for the mask-scheme parameters of cpp/objectives.hpp (SchemeKind, SchemeParams):
// the one way a scheme crosses into the compiled core. Every structdrop.schemes scheme builds its
// SchemeParams in MaskScheme._core_params(); the values are validated by the kernels (scheme_stats).
#include <pybind11/pybind11.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "objectives.hpp"
#include "register.hpp"

namespace structdrop::bindings {
namespace {

// nullptr for an integer outside the enum (pybind11's SchemeKind(7) builds one).
const char* kind_name(SchemeKind kind) {
  switch (kind) {
    case SchemeKind::none:
      return "none";
    case SchemeKind::dropout:
      return "dropout";
    case SchemeKind::dropblock:
      return "dropblock";
    case SchemeKind::overlapping_dropblock:
      return "overlapping_dropblock";
    case SchemeKind::dropconnect:
      return "dropconnect";
  }
  return nullptr;
}

SchemeParams make_params(SchemeKind kind, double theta, std::ptrdiff_t block_size, double gamma) {
  if (kind_name(kind) == nullptr)
    throw std::invalid_argument(
        "kind must be a SchemeKind (none, dropout, dropblock, overlapping_dropblock, dropconnect), got " +
        std::to_string(static_cast<int>(kind)));
  SchemeParams p;
  p.kind = kind;
  p.theta = theta;
  p.block_size = block_size;
  p.gamma = gamma;
  return p;
}

// Python's repr of a float: the shortest string that reads back to the same double.
std::string float_repr(double value) { return py::repr(py::float_(value)).cast<std::string>(); }

}  // namespace

void register_schemes(py::module_& m) {
  py::enum_<SchemeKind>(m, "SchemeKind", "The mask distributions of the compiled core (structdrop::SchemeKind).")
      .value("none", SchemeKind::none, "no mask (z = 1)")
      .value("dropout", SchemeKind::dropout, "Bernoulli(theta) per hidden unit")
      .value("dropblock", SchemeKind::dropblock, "Bernoulli(theta) per block of block_size consecutive units")
      .value("overlapping_dropblock", SchemeKind::overlapping_dropblock,
             "seeds j = 0..d - block_size ~ Bernoulli(gamma), each drops units j..j + block_size - 1")
      .value("dropconnect", SchemeKind::dropconnect, "Bernoulli(theta) per entry of V (b x d)");

  py::class_<SchemeParams>(m, "SchemeParams",
                           "One mask scheme's parameters as the kernels take them (immutable). Fields a\n"
                           "scheme does not use hold neutral values: theta 1.0, block_size 1, gamma 0.0.\n"
                           "The kind is checked on construction, the values where they are used (ValueError).")
      .def(py::init(&make_params), py::arg("kind"), py::arg("theta") = 1.0, py::arg("block_size") = 1,
           py::arg("gamma") = 0.0)
      .def_readonly("kind", &SchemeParams::kind)
      .def_readonly("theta", &SchemeParams::theta, "retain probability: dropout, dropblock, dropconnect")
      .def_readonly("block_size", &SchemeParams::block_size, "block length: dropblock, overlapping_dropblock")
      .def_readonly("gamma", &SchemeParams::gamma, "seed probability: overlapping_dropblock")
      .def("__repr__",
           [](const SchemeParams& p) {
             return std::string("SchemeParams(kind=SchemeKind.") + kind_name(p.kind) +
                    ", theta=" + float_repr(p.theta) + ", block_size=" + std::to_string(p.block_size) +
                    ", gamma=" + float_repr(p.gamma) + ")";
           })
      .def(
          "__eq__",
          [](const SchemeParams& p, const SchemeParams& q) {
            return p.kind == q.kind && p.theta == q.theta && p.block_size == q.block_size && p.gamma == q.gamma;
          },
          py::is_operator())
      .def("__hash__",
           [](const SchemeParams& p) {
             return py::hash(py::make_tuple(static_cast<int>(p.kind), p.theta, p.block_size, p.gamma));
           })
      .def(py::pickle([](const SchemeParams& p) { return py::make_tuple(p.kind, p.theta, p.block_size, p.gamma); },
                      [](const py::tuple& t) {
                        if (t.size() != 4)
                          throw std::invalid_argument("SchemeParams state must be (kind, theta, block_size, gamma)");
                        return make_params(t[0].cast<SchemeKind>(), t[1].cast<double>(), t[2].cast<std::ptrdiff_t>(),
                                           t[3].cast<double>());
                      }));
}

}  // namespace structdrop::bindings
