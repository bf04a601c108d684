// The masked-SGD kernels for the compiler's default target (SSE2 on x86-64, NEON on aarch64, or
// plain ISO C++ in the portable build): always built, and the fallback of the dispatch.
#define STRUCTDROP_PORTABLE_PRIVATE 1  // this unit shares no inline function with others
#define STRUCTDROP_KERNEL_SET_FUNCTION baseline_kernels
#include "sgd/kernels_body.hpp"
