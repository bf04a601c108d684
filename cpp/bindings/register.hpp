// Registration functions of the bound areas; each lives in its own file of cpp/bindings/.
#pragma once

#include <pybind11/pybind11.h>

namespace structdrop::bindings {

void register_schemes(pybind11::module_& m);  // first: the others take its types
void register_ksupport(pybind11::module_& m);
void register_sgd(pybind11::module_& m);
void register_objectives(pybind11::module_& m);

}  // namespace structdrop::bindings
