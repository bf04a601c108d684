// The masked-SGD kernels compiled with AVX2 (CMakeLists.txt sets -mavx2, or /arch:AVX2 with
// MSVC, on this file only; no FMA). x86-64 only: elsewhere, and in the portable build, this file
// compiles to nothing and the dispatch never names it.
#define STRUCTDROP_PORTABLE_PRIVATE 1  // this unit shares no inline function with others
#include "portable.hpp"

#if STRUCTDROP_X86_64
#if !defined(__AVX2__)
#error "kernels_avx2.cpp must be compiled with AVX2 enabled (-mavx2, or /arch:AVX2 with MSVC)"
#endif
#define STRUCTDROP_KERNEL_SET_FUNCTION avx2_kernels
#include "sgd/kernels_body.hpp"
#endif
