// Masked SGD for the one-hidden-layer linear network y = U D V^T x (Algorithm 1 of the paper and
// its minibatch form) under every mask scheme of objectives.hpp, with recordings of the stochastic
// full-data loss and of the exact deterministic objective, and many independent runs in threads.
//
// Step (Algorithm 1, both updates from the old U, V). For a sample (x, y) and a fresh mask:
//   unit schemes (none, dropout, dropblock, overlapping dropblock):
//     D = diag(z_i / mu_i), mu_i = E[z_i] (= diag(z)/theta for dropout and dropblock, the paper's
//     (1/theta) D_z; the exact per-unit means for overlapping dropblock; D = I for none),
//     eps = U D V^T x - y,
//     U <- U - lr eps x^T V D,   V <- V - lr x eps^T U D.
//   dropconnect (elementwise mask Z on V, b x d):
//     eps = (1/theta) U (Z o V)^T x - y,
//     U <- U - (lr/theta) eps x^T (Z o V),   V <- V - (lr/theta) Z o (x eps^T U).
// These are exactly the paper's lines 8-9, U <- U - (eta/theta) eps x^T V D_z, with eta = lr: the
// step is lr times the gradient of the per-sample loss (1/2)||eps||^2 (the paper omits the factor 2
// of d||eps||^2). Minibatch: the mean of these per-sample steps over the batch, one fresh mask per
// sample, all from the same old U, V. Sampling: every slot of every step draws its training sample
// uniformly at random with replacement from the N columns. Hence one step's expected update is
// -(lr / (2N)) times the gradient of the scheme's deterministic objective (objectives.hpp).
//
// Step size of step t (t = 1..T): lr_t = lr / (1 + (t - 1) / lr_decay), or lr when lr_decay = 0.
//
// Only kept units cost work: a step reads and writes the columns U_i, V_i of the kept units only,
// about (2b + 3a) multiply-adds per kept unit (dropconnect: every unit, with its b x d mask). With
// batch_size = 1 the loop also fuses the update of step t with the forward pass of step t+1, so each
// column is read and written once per step, and works four columns at a time so that the shared
// vectors (the errors, the two samples) are loaded once per four columns.
//
// Recordings at steps 0, record_every, 2 record_every, ..., and the last step T:
//   stochastic    = ||Y - U_t D V_t^T X||_F^2 over all N samples with ONE mask: the mask that step
//                   t+1 (its first minibatch slot) draws, which is independent of U_t, V_t, so its
//                   expectation over the mask is exactly the deterministic objective (the paper's
//                   "stochastic" curve, Figures 1-2). Computed from the cached moments X X^T, Y X^T.
//   deterministic = deterministic_objective(stats, moments, U_t, V_t) (objectives.hpp).
//
// Randomness: random.hpp, a pure function of (seed, step, slot): the run does not depend on the
// thread count, on the other runs of the call, or on record_every.
// Pure C++: no Python types.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "objectives.hpp"
#include "random.hpp"

namespace structdrop {

// Data shared read-only by every run: X (b x N) and Y (a x N) column-major, not owned (they must
// outlive the runs), and their moments, computed once.
struct TrainData {
  const double* X = nullptr;
  const double* Y = nullptr;
  std::ptrdiff_t a = 0, b = 0, N = 0;
  DataMoments moments;
};

// Computes the moments (one O((a + b) b N) pass). Throws std::invalid_argument on bad sizes.
TrainData make_train_data(const double* X, const double* Y, std::ptrdiff_t a, std::ptrdiff_t b, std::ptrdiff_t N);

struct TrainSettings {
  SchemeParams scheme;
  double lr = 0.0;                // > 0
  long long iterations = 0;       // >= 1, < 2^56
  std::ptrdiff_t batch_size = 1;  // >= 1
  long long record_every = 100;   // >= 1
  std::uint64_t seed = 0;
  double lr_decay = 0.0;  // t0 of lr / (1 + (t-1)/t0); 0: constant step size
};

struct TrainOutput {
  Matrix U, V;                          // final iterates, a x d and b x d
  std::vector<long long> record_steps;  // 0, record_every, ..., iterations
  std::vector<double> stochastic;       // see the header comment
  std::vector<double> deterministic;
  double seconds = 0.0;  // wall time of the loop, recordings included
};

// A run whose iterates stopped being finite. `step` is the step whose update produced the first
// non-finite value detected (checked every step on the error vector, and on U, V at recordings).
class TrainingDiverged : public std::runtime_error {
 public:
  TrainingDiverged(long long step, const std::string& what) : std::runtime_error(what), step_(step) {}
  long long step() const { return step_; }

 private:
  long long step_;
};

// A run stopped by TrainControl::cancel.
class TrainingCancelled : public std::runtime_error {
 public:
  TrainingCancelled() : std::runtime_error("training cancelled") {}
};

// Optional hooks: a progress counter the loop adds its completed steps to (every few thousand
// steps, relaxed atomics: no measurable cost) and a flag that stops the run (TrainingCancelled).
struct TrainControl {
  std::atomic<long long>* steps_done = nullptr;
  const std::atomic<bool>* cancel = nullptr;
};

// Validates settings against the data and U0 (a x d), V0 (b x d): std::invalid_argument naming
// the problem. Called by train() and train_many() before any work.
void validate_training(const TrainData& data, const TrainSettings& settings, std::ptrdiff_t U_rows,
                       std::ptrdiff_t U_cols, std::ptrdiff_t V_rows, std::ptrdiff_t V_cols);

// One run. Throws std::invalid_argument (bad settings), TrainingDiverged, TrainingCancelled.
TrainOutput train(const TrainData& data, const TrainSettings& settings, const MatrixRef& U0, const MatrixRef& V0,
                  const TrainControl& control = {});

// One of many runs: its settings and its initial U0 (a x d), V0 (b x d), column-major, not owned.
struct TrainJob {
  TrainSettings settings;
  const double* U0 = nullptr;
  const double* V0 = nullptr;
  std::ptrdiff_t d = 0;
};

struct TrainJobResult {
  TrainOutput output;
  enum class Status { ok, diverged, cancelled, failed } status = Status::ok;
  long long diverged_step = 0;
  std::string message;
};

// Many independent runs in `threads` worker threads (<= 0: hardware concurrency; never more than
// the number of jobs). Each job's result depends only on its own job (not on `threads`). The
// calling thread waits, calling monitor(steps done, steps total) about every `monitor_interval`
// seconds (if monitor is set); when it returns false, the remaining work is cancelled. Every
// job's settings are validated first (std::invalid_argument naming the job).
std::vector<TrainJobResult> train_many(const TrainData& data, const std::vector<TrainJob>& jobs, int threads,
                                       const std::function<bool(long long, long long)>& monitor = {},
                                       double monitor_interval = 0.25);

// ---- Pieces exposed for tests and tools -------------------------------------------------------

// The draws of one minibatch slot of one step, exactly as the training loop makes them:
// the sample index in [0, N) and the mask, as 0/1 bytes: d of them for unit schemes, b*d for
// dropconnect (column-major b x d, entry (j, i) at i*b + j).
void draw_slot(const SchemeStats& stats, std::ptrdiff_t b, std::ptrdiff_t N, std::uint64_t seed, long long step,
               std::ptrdiff_t slot, long long* index, std::uint8_t* mask);

// One step with given samples and masks (Xb: b x B, Yb: a x B, masks: B blocks as draw_slot
// writes them), updating U, V in place with step size lr: the same arithmetic as the loop.
void masked_sgd_step(const SchemeStats& stats, Matrix& U, Matrix& V, const MatrixRef& Xb, const MatrixRef& Yb,
                     const std::uint8_t* masks, double lr);

// ||Y - U D V^T X||^2 over all N for one given mask (format of draw_slot), from the moments.
// (Recordings use it with the mask of step t+1; O(a b kept + a b^2), independent of N.)
double stochastic_loss(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V,
                       const std::uint8_t* mask);

// The instruction set of the hot loops: "avx512" (AVX-512VL) or "avx2" where the CPU has it, else
// "baseline" (the compiler's default target, SSE2 on x86-64; the only one on other architectures
// and in the portable ISO C++ build, STRUCTDROP_PORTABLE). All give bit-identical results
// (fixed evaluation order, no FMA contraction). set_sgd_kernel_isa("auto" | "baseline" | "avx2" |
// "avx512") overrides the choice for the whole process (tests and benchmarks); it applies to runs
// started afterwards. Throws std::invalid_argument for a set this CPU lacks.
std::string sgd_kernel_isa();
void set_sgd_kernel_isa(const std::string& name);

}  // namespace structdrop
