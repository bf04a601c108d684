// The structdrop._core extension: one registration function per bound area.
#include <pybind11/pybind11.h>

#include "register.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "structdrop's compiled kernels (C++17/Eigen). Use the structdrop package, not this module.";
  structdrop::bindings::register_schemes(m);
  structdrop::bindings::register_ksupport(m);
  structdrop::bindings::register_sgd(m);
  structdrop::bindings::register_objectives(m);
}
