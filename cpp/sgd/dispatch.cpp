// Which kernel translation unit the masked-SGD engine runs: the best instruction set this CPU
// offers among those built (STRUCTDROP_X86_KERNELS, set by CMakeLists.txt on this file when it
// compiles the AVX2 and AVX-512 units), unless set_sgd_kernel_isa asked for another.
#include <atomic>
#include <stdexcept>
#include <string>

#include "portable.hpp"
#include "sgd.hpp"
#include "sgd/kernels.hpp"

#if defined(STRUCTDROP_X86_KERNELS) && STRUCTDROP_X86_KERNELS && STRUCTDROP_X86_64
#define SD_DISPATCH_X86 1
#else
#define SD_DISPATCH_X86 0
#endif

namespace structdrop {
namespace {

enum Isa : int { isa_auto = 0, isa_baseline = 1, isa_avx2 = 2, isa_avx512 = 3 };
std::atomic<int> isa_request{isa_auto};

int best_isa() {
#if SD_DISPATCH_X86
  static const int best = [] {
    const portable::CpuFeatures cpu = portable::detect_cpu_features();
    return cpu.avx512 ? isa_avx512 : cpu.avx2 ? isa_avx2 : isa_baseline;
  }();
  return best;
#else
  return isa_baseline;
#endif
}

int active_isa() {
  const int request = isa_request.load(std::memory_order_relaxed);
  return request == isa_auto ? best_isa() : request;
}

}  // namespace

namespace sgd_kernels {

KernelSet active_kernels() {
  switch (active_isa()) {
#if SD_DISPATCH_X86
    case isa_avx2:
      return avx2_kernels();
    case isa_avx512:
      return avx512_kernels();
#endif
    default:
      return baseline_kernels();
  }
}

}  // namespace sgd_kernels

std::string sgd_kernel_isa() {
  switch (active_isa()) {
    case isa_avx2:
      return "avx2";
    case isa_avx512:
      return "avx512";
    default:
      return "baseline";
  }
}

void set_sgd_kernel_isa(const std::string& name) {
  int isa = 0;
  if (name == "auto") {
    isa = isa_auto;
  } else if (name == "baseline") {
    isa = isa_baseline;
  } else if (name == "avx2") {
    isa = isa_avx2;
  } else if (name == "avx512") {
    isa = isa_avx512;
  } else {
    throw std::invalid_argument("kernel ISA must be 'auto', 'baseline', 'avx2' or 'avx512', got '" + name + "'");
  }
  if (isa > best_isa()) throw std::invalid_argument("this CPU (or build) does not support " + name);
  isa_request.store(isa);
}

}  // namespace structdrop
