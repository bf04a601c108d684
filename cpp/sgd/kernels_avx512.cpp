// The masked-SGD kernels compiled with AVX-512 F and VL (CMakeLists.txt sets -mavx2 -mavx512f
// -mavx512vl, or /arch:AVX512 with MSVC, on this file only; no FMA): still four-wide vectors, but
// 32 vector registers for the four-column groups. x86-64 only: elsewhere, and in the portable
// build, this file compiles to nothing and the dispatch never names it.
#define STRUCTDROP_PORTABLE_PRIVATE 1  // this unit shares no inline function with others
#include "portable.hpp"

#if STRUCTDROP_X86_64
#if !defined(__AVX512F__) || !defined(__AVX512VL__)
#error "kernels_avx512.cpp must be compiled with AVX-512 F and VL enabled (-mavx512f -mavx512vl, or /arch:AVX512)"
#endif
#define STRUCTDROP_KERNEL_SET_FUNCTION avx512_kernels
#include "sgd/kernels_body.hpp"
#endif
