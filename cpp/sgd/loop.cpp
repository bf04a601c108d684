// Masked SGD (Algorithm 1), the training loop: one run (train) and many (train_many). See sgd.hpp
// for the mathematics and the conventions; the hot passes are in kernels_*.cpp, the masks in
// mask.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <utility>

#include "parallel.hpp"
#include "portable.hpp"
#include "sgd.hpp"
#include "sgd/batch.hpp"
#include "sgd/kernels.hpp"
#include "sgd/mask.hpp"

namespace structdrop {
namespace {

using sgd_detail::BatchWork;
using sgd_detail::Bits;
using sgd_detail::draw_index;
using sgd_detail::draw_mask;
using sgd_detail::Sampler;
using sgd_detail::stochastic_loss_bits;

// Touches the cache lines of x[0..n) (random columns of X, Y are rarely in cache).
inline void prefetch(const double* x, std::ptrdiff_t n) {
  for (std::ptrdiff_t j = 0; j < n; j += 8) portable::prefetch(x + j);
  portable::prefetch(x + n - 1);
}

inline bool all_finite(const double* x, std::ptrdiff_t n) {
  double sum = 0.0;
  for (std::ptrdiff_t j = 0; j < n; ++j) sum += x[j] * 0.0;  // 0 unless some x[j] is NaN or inf
  return sum == 0.0;
}

// ---- The training loop ---------------------------------------------------------------------

inline double step_size(const TrainSettings& settings, long long t) {
  if (settings.lr_decay <= 0.0) return settings.lr;
  return settings.lr / (1.0 + static_cast<double>(t - 1) / settings.lr_decay);
}

[[noreturn]] void diverged(long long step, const char* where) {
  std::ostringstream message;
  message << "training diverged at step " << step << ": " << where
          << " stopped being finite (the step size is too large for this data and initialisation;"
             " use a smaller lr or an lr_decay)";
  throw TrainingDiverged(step, message.str());
}

class Loop {
 public:
  Loop(const TrainData& data, const TrainSettings& settings, const MatrixRef& U0, const MatrixRef& V0,
       const TrainControl& control)
      : data_(data),
        settings_(settings),
        control_(control),
        stats_(scheme_stats(settings.scheme, U0.cols(), /*dense_cbar=*/false)),
        sampler_(stats_, data.b),
        U_(U0),
        V_(V0) {}

  TrainOutput run() {
    const auto start = std::chrono::steady_clock::now();
    const long long T = settings_.iterations;
    const long long count = T / settings_.record_every + 1 + (T % settings_.record_every != 0 ? 1 : 0);
    out_.record_steps.reserve(static_cast<std::size_t>(count));
    out_.stochastic.reserve(static_cast<std::size_t>(count));
    out_.deterministic.reserve(static_cast<std::size_t>(count));
    if (settings_.batch_size == 1)
      run_fused();
    else
      run_batched();
    if (!all_finite(U_.data(), U_.size()) || !all_finite(V_.data(), V_.size())) diverged(T, "U or V");
    out_.U = std::move(U_);
    out_.V = std::move(V_);
    out_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::move(out_);
  }

 private:
  const double* xcol(long long index) const { return data_.X + index * data_.b; }
  const double* ycol(long long index) const { return data_.Y + index * data_.a; }

  bool should_record(long long t) const { return t % settings_.record_every == 0 || t == settings_.iterations; }

  // Records U_t, V_t with `mask` (the mask of step t+1, slot 0).
  void record(long long t, const std::uint64_t* mask) {
    const double stochastic = stochastic_loss_bits(sampler_, data_.moments, U_, V_, mask);
    const double deterministic = deterministic_objective(stats_, data_.moments, U_, V_);
    if (!std::isfinite(stochastic) || !std::isfinite(deterministic)) diverged(t, "the objective");
    out_.record_steps.push_back(t);
    out_.stochastic.push_back(stochastic);
    out_.deterministic.push_back(deterministic);
  }

  // Progress and cancellation, every 1024 steps.
  void tick(long long t) {
    if ((t & 1023) != 0 && t != settings_.iterations) return;
    if (control_.steps_done != nullptr) control_.steps_done->fetch_add(t - reported_, std::memory_order_relaxed);
    reported_ = t;
    if (control_.cancel != nullptr && control_.cancel->load(std::memory_order_relaxed)) throw TrainingCancelled();
  }

  // batch_size = 1: the update of step t fused with the forward pass of step t+1, so that each
  // column is read and written once per step.
  void run_fused() {
    const std::ptrdiff_t a = data_.a, b = data_.b, d = U_.cols(), words = sampler_.words;
    const bool connect = sampler_.kind == SchemeKind::dropconnect;
    const long long T = settings_.iterations;
    const std::uint64_t seed = settings_.seed;
    const sgd_kernels::KernelSet kernels = sgd_kernels::active_kernels();
    Bits now(static_cast<std::size_t>(words)), next(static_cast<std::size_t>(words));
    const Bits none(static_cast<std::size_t>(words), 0);
    std::vector<std::uint64_t> scratch;
    std::vector<double> h_now(static_cast<std::size_t>(d)), h_next(static_cast<std::size_t>(d));
    std::vector<double> e_now(static_cast<std::size_t>(a)), e_next(static_cast<std::size_t>(a));
    std::vector<double> xs_now(connect ? b : 0), xs_next(connect ? b : 0), buf_now(connect ? b : 0),
        buf_next(connect ? b : 0);
    std::vector<std::ptrdiff_t> lists(connect ? 0 : static_cast<std::size_t>(3 * 64 * words));

    long long index_next = 0, index_ahead = draw_index(seed, 1, 0, data_.N);
    // Draws step t's sample and mask into the `next` slot and starts its forward pass; also
    // draws step t+1's sample index and prefetches that sample (random columns of X, Y are
    // rarely in cache, and their latency would otherwise stall the next step).
    auto prepare = [&](long long t) {
      index_next = index_ahead;
      if (t < T) {
        index_ahead = draw_index(seed, t + 1, 0, data_.N);
        prefetch(xcol(index_ahead), b);
        prefetch(ycol(index_ahead), a);
      }
      draw_mask(sampler_, seed, t, 0, next.data(), scratch);
      const double* y = ycol(index_next);
      for (std::ptrdiff_t j = 0; j < a; ++j) e_next[j] = -y[j];
      if (connect) {
        const double* x = xcol(index_next);
        for (std::ptrdiff_t j = 0; j < b; ++j) xs_next[j] = x[j] * sampler_.inv_theta;
      }
    };
    // One pass: update with `now` (if update) and forward with `next` (if forward).
    auto pass = [&](bool update, bool forward, double lr, const double* x_now) {
      // DropConnect: no mask means no update or no forward pass; unit schemes: an empty mask.
      const std::uint64_t* empty = connect ? nullptr : none.data();
      const sgd_kernels::FusedStep step{update ? now.data() : empty,
                                        forward ? next.data() : empty,
                                        h_now.data(),
                                        h_next.data(),
                                        e_now.data(),
                                        e_next.data(),
                                        connect ? xs_now.data() : x_now,
                                        connect ? xs_next.data() : (forward ? xcol(index_next) : nullptr),
                                        lr,
                                        U_.data(),
                                        V_.data()};
      if (connect) {
        kernels.connect_pass({step, a, b, d, sampler_.wb, buf_now.data(), buf_next.data()});
      } else {
        kernels.unit_pass({step, a, b, words, sampler_.scale.data(), lists.data()});
      }
    };

    prepare(1);
    pass(false, true, 0.0, nullptr);
    if (!all_finite(e_next.data(), a)) diverged(0, "the initial error (U0, V0)");
    record(0, next.data());

    for (long long t = 1; t <= T; ++t) {
      std::swap(now, next);
      std::swap(h_now, h_next);
      std::swap(e_now, e_next);
      std::swap(xs_now, xs_next);
      const double* x_now = xcol(index_next);
      const bool forward = t < T;
      if (forward) prepare(t + 1);
      pass(true, forward, step_size(settings_, t), x_now);
      if (forward && !all_finite(e_next.data(), a)) diverged(t, "the error of the next step (U, V)");
      if (should_record(t)) {
        if (!forward) draw_mask(sampler_, seed, t + 1, 0, next.data(), scratch);
        record(t, next.data());
      }
      tick(t);
    }
  }

  // Minibatches: draws, forward passes from the old U, V, mean update.
  void run_batched() {
    const std::ptrdiff_t B = settings_.batch_size;
    const long long T = settings_.iterations;
    const std::uint64_t seed = settings_.seed;
    const sgd_kernels::KernelSet kernels = sgd_kernels::active_kernels();
    BatchWork work;
    work.resize(sampler_, data_.a, data_.b, B);
    Bits record_mask(static_cast<std::size_t>(sampler_.words));
    std::vector<std::uint64_t> scratch;
    draw_mask(sampler_, seed, 1, 0, record_mask.data(), scratch);
    record(0, record_mask.data());
    for (long long t = 1; t <= T; ++t) {
      for (std::ptrdiff_t s = 0; s < B; ++s) {
        const long long index = draw_index(seed, t, s, data_.N);
        work.x[s] = xcol(index);
        work.y[s] = ycol(index);
        draw_mask(sampler_, seed, t, s, work.mask(sampler_, s), scratch);
      }
      if (!work.step(kernels, sampler_, U_, V_, step_size(settings_, t))) diverged(t - 1, "the error (U, V)");
      if (should_record(t)) {
        draw_mask(sampler_, seed, t + 1, 0, record_mask.data(), scratch);
        record(t, record_mask.data());
      }
      tick(t);
    }
  }

  const TrainData& data_;
  const TrainSettings& settings_;
  const TrainControl& control_;
  SchemeStats stats_;
  Sampler sampler_;
  Matrix U_, V_;
  TrainOutput out_;
  long long reported_ = 0;
};

}  // namespace

TrainData make_train_data(const double* X, const double* Y, std::ptrdiff_t a, std::ptrdiff_t b, std::ptrdiff_t N) {
  if (a < 1 || b < 1 || N < 1) throw std::invalid_argument("X and Y must have at least one row and one column");
  TrainData data;
  data.X = X;
  data.Y = Y;
  data.a = a;
  data.b = b;
  data.N = N;
  data.moments = compute_moments(Eigen::Map<const Matrix>(X, b, N), Eigen::Map<const Matrix>(Y, a, N));
  return data;
}

void validate_training(const TrainData& data, const TrainSettings& settings, std::ptrdiff_t U_rows,
                       std::ptrdiff_t U_cols, std::ptrdiff_t V_rows, std::ptrdiff_t V_cols) {
  auto fail = [](const std::string& message) { throw std::invalid_argument(message); };
  if (U_rows != data.a)
    fail("U0 must have a = " + std::to_string(data.a) + " rows (the rows of Y), got " + std::to_string(U_rows));
  if (V_rows != data.b)
    fail("V0 must have b = " + std::to_string(data.b) + " rows (the rows of X), got " + std::to_string(V_rows));
  if (U_cols != V_cols)
    fail("U0 and V0 must have the same number of columns d, got " + std::to_string(U_cols) + " and " +
         std::to_string(V_cols));
  if (U_cols < 1) fail("U0 and V0 must have at least one column");
  if (!(settings.lr > 0.0) || !std::isfinite(settings.lr)) fail("lr must be finite and > 0");
  if (settings.iterations < 1) fail("iterations must be >= 1");
  if (settings.iterations >= (1LL << 56) - 1) fail("iterations must be < 2^56 - 1");
  if (settings.batch_size < 1) fail("batch_size must be >= 1");
  if (settings.batch_size > 0x7FFFFFFFL) fail("batch_size must be < 2^31");
  if (settings.record_every < 1) fail("record_every must be >= 1");
  if (!(settings.lr_decay >= 0.0) || !std::isfinite(settings.lr_decay)) fail("lr_decay must be finite and >= 0");
  scheme_stats(settings.scheme, U_cols,
               /*dense_cbar=*/false);  // throws std::invalid_argument when the scheme cannot apply at width d
}

TrainOutput train(const TrainData& data, const TrainSettings& settings, const MatrixRef& U0, const MatrixRef& V0,
                  const TrainControl& control) {
  validate_training(data, settings, U0.rows(), U0.cols(), V0.rows(), V0.cols());
  return Loop(data, settings, U0, V0, control).run();
}

std::vector<TrainJobResult> train_many(const TrainData& data, const std::vector<TrainJob>& jobs, int threads,
                                       const std::function<bool(long long, long long)>& monitor,
                                       double monitor_interval) {
  long long total = 0;
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    const TrainJob& job = jobs[j];
    try {
      validate_training(data, job.settings, data.a, job.d, data.b, job.d);
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument("run " + std::to_string(j) + ": " + error.what());
    }
    if (job.U0 == nullptr || job.V0 == nullptr) throw std::invalid_argument("run " + std::to_string(j) + ": no U0/V0");
    total += job.settings.iterations;
  }
  std::vector<TrainJobResult> results(jobs.size());
  if (jobs.empty()) return results;

  std::atomic<long long> steps_done{0};
  std::atomic<bool> cancel{false};
  const TrainControl control{&steps_done, &cancel};

  // One run; every outcome is recorded in its result, so the task never throws.
  auto run = [&](std::size_t j) {
    const TrainJob& job = jobs[j];
    TrainJobResult& result = results[j];
    try {
      if (cancel.load()) throw TrainingCancelled();
      const Eigen::Map<const Matrix> U0(job.U0, data.a, job.d), V0(job.V0, data.b, job.d);
      result.output = Loop(data, job.settings, U0, V0, control).run();
    } catch (const TrainingDiverged& error) {
      result.status = TrainJobResult::Status::diverged;
      result.diverged_step = error.step();
      result.message = error.what();
    } catch (const TrainingCancelled& error) {
      result.status = TrainJobResult::Status::cancelled;
      result.message = error.what();
    } catch (const std::exception& error) {
      result.status = TrainJobResult::Status::failed;
      result.message = error.what();
    } catch (...) {
      result.status = TrainJobResult::Status::failed;
      result.message = "unknown error";
    }
  };
  // The monitor runs on the calling thread; a false answer (or an exception) cancels the rest.
  std::function<void()> poll;
  if (monitor)
    poll = [&] {
      bool keep_going = true;
      try {
        keep_going = monitor(steps_done.load(std::memory_order_relaxed), total);
      } catch (...) {
        keep_going = false;
      }
      if (!keep_going) cancel.store(true);
    };
  parallel::for_each_index(jobs.size(), threads, run, poll, monitor_interval);
  if (monitor) monitor(total, total);
  return results;
}

}  // namespace structdrop
