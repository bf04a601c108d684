// The hot passes of the masked-SGD engine, compiled once per instruction set (kernels_baseline.cpp,
// and on x86-64 kernels_avx2.cpp and kernels_avx512.cpp with per-file compiler flags) and chosen
// at run time by dispatch.cpp. Every copy gives the same bits: the passes fix their evaluation
// order (dot products keep 8 partial sums, lane k summing the entries k mod 8, combined in a fixed
// tree) and nothing contracts a multiply and an add into an FMA.
//
// The interface is plain data (pointers and sizes): a kernel translation unit includes no Eigen
// and no standard-library code that another translation unit also instantiates, so the linker
// can never pick an AVX-512 copy of a shared inline function for the baseline path.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>

namespace structdrop::sgd_kernels {

// What the fused per-sample passes share: the update of step t (kept set `now`, from h_now, e_now,
// x_now) fused with the forward pass of step t+1 (kept set `next`, into h_next, e_next, with
// x_next; e_next holds -y_next on entry). U (a x d) and V (b x d) column-major.
struct FusedStep {
  const std::uint64_t* now;
  const std::uint64_t* next;
  const double* h_now;
  double* h_next;
  const double* e_now;
  double* e_next;
  const double* x_now;
  const double* x_next;
  double lr;
  double* U;
  double* V;
};

// Unit schemes, batch 1: either set may be empty (the first forward pass; the last update).
struct UnitPass : FusedStep {
  std::ptrdiff_t a, b, words;
  const double* scale;
  std::ptrdiff_t* lists;  // 3 * 64 * words indices of scratch
};

// DropConnect, batch 1: the same fusion over every column; x_now and x_next hold x / theta; the
// masks in the dropconnect layout (now or next may be null: no update, or no forward pass).
struct ConnectPass : FusedStep {
  std::ptrdiff_t a, b, d, wb;
  double* buf_now;   // b doubles of scratch
  double* buf_next;  // b doubles of scratch
};

// Minibatch (any scheme): the forward pass of every slot from the old U, V, then the mean update.
struct BatchPass {
  std::ptrdiff_t a, b, d, B;
  std::ptrdiff_t words;        // words of one mask
  std::ptrdiff_t wb;           // dropconnect: words per column of the mask
  bool connect;                // dropconnect (else a unit scheme)
  double inv_theta;            // dropconnect
  const double* scale;         // unit schemes: 1 / mu_i
  const double* const* x;      // the B samples (b each)
  const double* const* y;      // their targets (a each)
  const std::uint64_t* masks;  // B masks of `words` words
  double* H;                   // d x B: h
  double* G;                   // d x B: g
  double* E;                   // a x B: eps
  double* xs;                  // b x B scratch (dropconnect: x / theta)
  double* mx;                  // b scratch (the masked x of one column)
  double* U;
  double* V;
  double lr;
};

struct KernelSet {
  void (*unit_pass)(const UnitPass&);
  void (*connect_pass)(const ConnectPass&);
  bool (*batch_step)(const BatchPass&);  // false when an error vector is not finite (U, V untouched)
};

KernelSet baseline_kernels();  // kernels_baseline.cpp: the compiler's default target
KernelSet avx2_kernels();      // kernels_avx2.cpp (x86-64 only)
KernelSet avx512_kernels();    // kernels_avx512.cpp (x86-64 only)

// The set chosen for this process (dispatch.cpp): set_sgd_kernel_isa's request, else the best
// set this CPU runs.
KernelSet active_kernels();

}  // namespace structdrop::sgd_kernels
