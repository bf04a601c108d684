// Masked SGD (Algorithm 1): see sgd.hpp for the mathematics and the conventions.
#include "sgd.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

namespace structdrop {
namespace {

using Bits = std::vector<std::uint64_t>;

// ---- Dense helpers with a fixed evaluation order (bit-identical for any SIMD width) ----------

inline double dot(const double* __restrict x, const double* __restrict y, long n) {
  double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  long j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[j + k] * y[j + k];
  double tail = 0.0;
  for (; j < n; ++j) tail += x[j] * y[j];
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

// y += alpha x
inline void axpy(double* __restrict y, double alpha, const double* __restrict x, long n) {
  for (long j = 0; j < n; ++j) y[j] += alpha * x[j];
}

// v -= cv * xt (in place), returning dot(v_new, xn).
inline double update_dot(double* __restrict v, double cv, const double* __restrict xt,
                         const double* __restrict xn, long n) {
  double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  long j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) {
      const double value = v[j + k] - cv * xt[j + k];
      v[j + k] = value;
      acc[k] += value * xn[j + k];
    }
  double tail = 0.0;
  for (; j < n; ++j) {
    const double value = v[j] - cv * xt[j];
    v[j] = value;
    tail += value * xn[j];
  }
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

// u -= cu * et (in place) and en += hn * u_new.
inline void update_accumulate(double* __restrict u, double cu, const double* __restrict et, double hn,
                              double* __restrict en, long n) {
  for (long j = 0; j < n; ++j) {
    const double value = u[j] - cu * et[j];
    u[j] = value;
    en[j] += hn * value;
  }
}

inline bool all_finite(const double* x, long n) {
  double sum = 0.0;
  for (long j = 0; j < n; ++j) sum += x[j] * 0.0;  // 0 unless some x[j] is NaN or inf
  return sum == 0.0;
}

// ---- Bit sets ------------------------------------------------------------------------------

inline bool test_bit(const std::uint64_t* bits, long i) { return (bits[i >> 6] >> (i & 63)) & 1u; }

void set_range(std::uint64_t* bits, long lo, long hi) {  // bits [lo, hi) := 1
  for (long i = lo; i < hi;) {
    const long word = i >> 6, offset = i & 63, count = std::min<long>(64 - offset, hi - i);
    const std::uint64_t ones = count == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << count) - 1);
    bits[word] |= ones << offset;
    i += count;
  }
}

void clear_range(std::uint64_t* bits, long lo, long hi) {  // bits [lo, hi) := 0
  for (long i = lo; i < hi;) {
    const long word = i >> 6, offset = i & 63, count = std::min<long>(64 - offset, hi - i);
    const std::uint64_t ones = count == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << count) - 1);
    bits[word] &= ~(ones << offset);
    i += count;
  }
}

inline long words_for(long bits) { return (bits + 63) / 64; }

// Calls f(i) for every set bit i, in increasing order.
template <class F>
inline void for_each_bit(const std::uint64_t* bits, long words, F&& f) {
  for (long w = 0; w < words; ++w) {
    std::uint64_t word = bits[w];
    while (word != 0) {
      const int offset = __builtin_ctzll(word);
      word &= word - 1;
      f((w << 6) + offset);
    }
  }
}

// ---- Mask sampling -------------------------------------------------------------------------

bool is_dropconnect(const SchemeStats& stats) { return stats.params.kind == SchemeKind::dropconnect; }

struct Sampler {
  SchemeKind kind = SchemeKind::none;
  long d = 0, b = 0, r = 1;
  long words = 0;           // words of one mask: d bits, or b*d bits for dropconnect
  rng::BernoulliBits p;     // per unit, per block, per seed or per entry
  std::vector<double> scale;  // unit schemes: 1 / mu_i
  double inv_theta = 1.0;     // dropconnect

  Sampler(const SchemeStats& stats, long b_) : kind(stats.params.kind), d(stats.width), b(b_) {
    switch (kind) {
      case SchemeKind::none:
        break;
      case SchemeKind::dropout:
      case SchemeKind::dropconnect:
        p = rng::BernoulliBits(stats.params.theta);
        break;
      case SchemeKind::dropblock:
        r = stats.params.block_size;
        p = rng::BernoulliBits(stats.params.theta);
        break;
      case SchemeKind::overlapping_dropblock:
        r = stats.params.block_size;
        p = rng::BernoulliBits(stats.params.gamma);
        break;
    }
    if (kind == SchemeKind::dropconnect) {
      words = words_for(b * d);
      inv_theta = 1.0 / stats.params.theta;
    } else {
      words = words_for(d);
      scale.resize(static_cast<std::size_t>(d));
      for (long i = 0; i < d; ++i) scale[i] = kind == SchemeKind::none ? 1.0 : 1.0 / stats.mean[i];
    }
  }

  // Bernoulli lanes [0, lanes) into out (words_for(lanes) words; bits past `lanes` cleared).
  void lanes(rng::Stream& stream, const rng::BernoulliBits& q, long lanes, std::uint64_t* out) const {
    const long w = words_for(lanes);
    for (long k = 0; k < w; ++k) out[k] = rng::bernoulli64(stream, q);
    if (lanes & 63) out[w - 1] &= (std::uint64_t{1} << (lanes & 63)) - 1;
  }

  // The mask of one slot: kept units (d bits) or kept entries of V (b*d bits, entry (j, i) at i*b+j).
  void draw(rng::Stream& stream, std::uint64_t* out, std::vector<std::uint64_t>& scratch) const {
    std::fill(out, out + words, std::uint64_t{0});
    switch (kind) {
      case SchemeKind::none:
        set_range(out, 0, d);
        break;
      case SchemeKind::dropout:
        lanes(stream, p, d, out);
        break;
      case SchemeKind::dropconnect:
        lanes(stream, p, b * d, out);
        break;
      case SchemeKind::dropblock: {
        const long k = d / r;
        scratch.assign(static_cast<std::size_t>(words_for(k)), 0);
        lanes(stream, p, k, scratch.data());
        for_each_bit(scratch.data(), words_for(k), [&](long block) { set_range(out, block * r, block * r + r); });
        break;
      }
      case SchemeKind::overlapping_dropblock: {
        const long seeds = d - r + 1;
        scratch.assign(static_cast<std::size_t>(words_for(seeds)), 0);
        lanes(stream, p, seeds, scratch.data());
        set_range(out, 0, d);
        for_each_bit(scratch.data(), words_for(seeds), [&](long seed) { clear_range(out, seed, seed + r); });
        break;
      }
    }
  }
};

inline long long draw_index(std::uint64_t seed, long long step, long slot, long N) {
  rng::Stream stream(seed, static_cast<std::uint64_t>(step), static_cast<std::uint32_t>(slot),
                     rng::Purpose::data_index);
  return static_cast<long long>(rng::bounded_index(stream.next(), static_cast<std::uint64_t>(N)));
}

inline void draw_mask(const Sampler& sampler, std::uint64_t seed, long long step, long slot, std::uint64_t* out,
                      std::vector<std::uint64_t>& scratch) {
  rng::Stream stream(seed, static_cast<std::uint64_t>(step), static_cast<std::uint32_t>(slot), rng::Purpose::mask);
  sampler.draw(stream, out, scratch);
}

// ---- Loss of one mask over all the data, from the moments ------------------------------------

// ||Y - M X||^2 = ||Y||^2 - 2 <M, Y X^T> + <M X X^T, M>.
double loss_of_product(const DataMoments& moments, const Matrix& M) {
  const double cross = M.cwiseProduct(moments.cross).sum();
  const double quad = (M * moments.gram).cwiseProduct(M).sum();
  return moments.y_sq_norm - 2.0 * cross + quad;
}

double stochastic_loss_bits(const Sampler& sampler, const DataMoments& moments, const MatrixRef& U,
                            const MatrixRef& V, const std::uint64_t* mask) {
  const long a = U.rows(), b = V.rows(), d = U.cols();
  Matrix M;
  if (sampler.kind == SchemeKind::dropconnect) {
    Matrix W(b, d);
    for (long i = 0; i < d; ++i)
      for (long j = 0; j < b; ++j) W(j, i) = test_bit(mask, i * b + j) ? V(j, i) * sampler.inv_theta : 0.0;
    M.noalias() = U * W.transpose();
  } else {
    long kept = 0;
    for_each_bit(mask, sampler.words, [&](long) { ++kept; });
    Matrix Uk(a, kept), Vk(b, kept);
    long c = 0;
    for_each_bit(mask, sampler.words, [&](long i) {
      Uk.col(c) = U.col(i) * sampler.scale[i];
      Vk.col(c) = V.col(i);
      ++c;
    });
    M.noalias() = Uk * Vk.transpose();
  }
  return loss_of_product(moments, M);
}

// ---- One generic (minibatch and/or dropconnect) step -----------------------------------------

struct BatchWork {
  long B = 0;
  std::vector<const double*> x, y;  // the B samples
  Bits masks;                       // B masks of sampler.words words
  Matrix H, G, E;                   // h (d x B), g (d x B), eps (a x B)
  std::vector<double> mx;           // dropconnect: masked, scaled x of one column (b)

  void resize(const Sampler& sampler, long a, long b, long batch) {
    B = batch;
    x.assign(static_cast<std::size_t>(batch), nullptr);
    y.assign(static_cast<std::size_t>(batch), nullptr);
    masks.assign(static_cast<std::size_t>(batch * sampler.words), 0);
    H.resize(sampler.d, batch);
    G.resize(sampler.d, batch);
    E.resize(a, batch);
    mx.assign(static_cast<std::size_t>(b), 0.0);
  }
  const std::uint64_t* mask(const Sampler& sampler, long s) const { return masks.data() + s * sampler.words; }
  std::uint64_t* mask(const Sampler& sampler, long s) { return masks.data() + s * sampler.words; }
};

// mx_j = z_ji x_j / theta for column i of a dropconnect mask.
inline void masked_x(const Sampler& sampler, const std::uint64_t* mask, long i, const double* x, double* mx) {
  const long b = sampler.b;
  for (long j = 0; j < b; ++j) mx[j] = test_bit(mask, i * b + j) ? x[j] * sampler.inv_theta : 0.0;
}

// Forward pass of every slot (from the old U, V), then the mean update over the slots.
// Returns false when an error vector is not finite (nothing is updated then).
bool generic_step(const Sampler& sampler, Matrix& U, Matrix& V, BatchWork& work, double lr) {
  const long a = U.rows(), b = V.rows(), d = U.cols(), B = work.B;
  double* mx = work.mx.data();
  for (long s = 0; s < B; ++s) {
    const double* x = work.x[s];
    const double* y = work.y[s];
    const std::uint64_t* mask = work.mask(sampler, s);
    double* h = work.H.col(s).data();
    double* g = work.G.col(s).data();
    double* eps = work.E.col(s).data();
    for (long j = 0; j < a; ++j) eps[j] = -y[j];
    if (sampler.kind == SchemeKind::dropconnect) {
      for (long i = 0; i < d; ++i) {
        masked_x(sampler, mask, i, x, mx);
        h[i] = dot(V.col(i).data(), mx, b);
        axpy(eps, h[i], U.col(i).data(), a);
      }
      if (!all_finite(eps, a)) return false;
      for (long i = 0; i < d; ++i) g[i] = dot(U.col(i).data(), eps, a);
    } else {
      for_each_bit(mask, sampler.words, [&](long i) {
        h[i] = sampler.scale[i] * dot(V.col(i).data(), x, b);
        axpy(eps, h[i], U.col(i).data(), a);
      });
      if (!all_finite(eps, a)) return false;
      for_each_bit(mask, sampler.words, [&](long i) { g[i] = sampler.scale[i] * dot(U.col(i).data(), eps, a); });
    }
  }
  const double c = lr / static_cast<double>(B);
  for (long i = 0; i < d; ++i) {
    double* u = U.col(i).data();
    double* v = V.col(i).data();
    for (long s = 0; s < B; ++s) {
      const std::uint64_t* mask = work.mask(sampler, s);
      if (sampler.kind == SchemeKind::dropconnect) {
        axpy(u, -c * work.H(i, s), work.E.col(s).data(), a);
        masked_x(sampler, mask, i, work.x[s], mx);
        axpy(v, -c * work.G(i, s), mx, b);
      } else if (test_bit(mask, i)) {
        axpy(u, -c * work.H(i, s), work.E.col(s).data(), a);
        axpy(v, -c * work.G(i, s), work.x[s], b);
      }
    }
  }
  return true;
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
        stats_(scheme_stats(settings.scheme, U0.cols())),
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
    if (settings_.batch_size == 1 && sampler_.kind != SchemeKind::dropconnect)
      run_fused();
    else
      run_generic();
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

  // batch_size = 1, unit schemes: the update of step t fused with the forward pass of step t+1.
  void run_fused() {
    const long a = data_.a, b = data_.b, d = U_.cols(), words = sampler_.words;
    const long long T = settings_.iterations;
    const std::uint64_t seed = settings_.seed;
    Bits now(static_cast<std::size_t>(words)), next(static_cast<std::size_t>(words)),
        either(static_cast<std::size_t>(words));
    std::vector<std::uint64_t> scratch;
    std::vector<double> h_now(static_cast<std::size_t>(d)), h_next(static_cast<std::size_t>(d));
    std::vector<double> e_now(static_cast<std::size_t>(a)), e_next(static_cast<std::size_t>(a));
    const double* scale = sampler_.scale.data();
    double* U = U_.data();
    double* V = V_.data();

    // Step 1's draws and forward pass.
    long long index_next = draw_index(seed, 1, 0, data_.N);
    draw_mask(sampler_, seed, 1, 0, next.data(), scratch);
    {
      const double* x = xcol(index_next);
      const double* y = ycol(index_next);
      for (long j = 0; j < a; ++j) e_next[j] = -y[j];
      for_each_bit(next.data(), words, [&](long i) {
        h_next[i] = scale[i] * dot(V + i * b, x, b);
        axpy(e_next.data(), h_next[i], U + i * a, a);
      });
      if (!all_finite(e_next.data(), a)) diverged(0, "the initial error (U0, V0)");
    }
    record(0, next.data());

    for (long long t = 1; t <= T; ++t) {
      std::swap(now, next);
      std::swap(h_now, h_next);
      std::swap(e_now, e_next);
      const double* x_now = xcol(index_next);
      const double lr = step_size(settings_, t);
      const bool forward = t < T;
      const double* x_next = nullptr;
      if (forward) {
        index_next = draw_index(seed, t + 1, 0, data_.N);
        draw_mask(sampler_, seed, t + 1, 0, next.data(), scratch);
        x_next = xcol(index_next);
        const double* y = ycol(index_next);
        for (long j = 0; j < a; ++j) e_next[j] = -y[j];
        for (long w = 0; w < words; ++w) either[w] = now[w] | next[w];
      } else {
        std::fill(next.begin(), next.end(), std::uint64_t{0});
        std::copy(now.begin(), now.end(), either.begin());
      }
      const double* en = e_now.data();
      double* ex = e_next.data();
      for_each_bit(either.data(), words, [&](long i) {
        double* u = U + i * a;
        double* v = V + i * b;
        const bool in_now = test_bit(now.data(), i), in_next = test_bit(next.data(), i);
        if (in_now) {
          const double g = scale[i] * dot(u, en, a);
          const double cu = lr * h_now[i], cv = lr * g;
          if (in_next) {
            const double hn = scale[i] * update_dot(v, cv, x_now, x_next, b);
            h_next[i] = hn;
            update_accumulate(u, cu, en, hn, ex, a);
          } else {
            axpy(v, -cv, x_now, b);
            axpy(u, -cu, en, a);
          }
        } else {  // only in next
          const double hn = scale[i] * dot(v, x_next, b);
          h_next[i] = hn;
          axpy(ex, hn, u, a);
        }
      });
      if (forward && !all_finite(ex, a)) diverged(t, "the error of the next step (U, V)");
      if (should_record(t)) {
        if (forward) {
          record(t, next.data());
        } else {
          draw_mask(sampler_, seed, t + 1, 0, next.data(), scratch);
          record(t, next.data());
        }
      }
      tick(t);
    }
  }

  // Minibatches and/or dropconnect: draws, forward passes from the old U, V, mean update.
  void run_generic() {
    const long B = settings_.batch_size;
    const long long T = settings_.iterations;
    const std::uint64_t seed = settings_.seed;
    BatchWork work;
    work.resize(sampler_, data_.a, data_.b, B);
    Bits record_mask(static_cast<std::size_t>(sampler_.words));
    std::vector<std::uint64_t> scratch;
    draw_mask(sampler_, seed, 1, 0, record_mask.data(), scratch);
    record(0, record_mask.data());
    for (long long t = 1; t <= T; ++t) {
      for (long s = 0; s < B; ++s) {
        const long long index = draw_index(seed, t, s, data_.N);
        work.x[s] = xcol(index);
        work.y[s] = ycol(index);
        draw_mask(sampler_, seed, t, s, work.mask(sampler_, s), scratch);
      }
      if (!generic_step(sampler_, U_, V_, work, step_size(settings_, t))) diverged(t - 1, "the error (U, V)");
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

TrainData make_train_data(const double* X, const double* Y, long a, long b, long N) {
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

void validate_training(const TrainData& data, const TrainSettings& settings, long U_rows, long U_cols, long V_rows,
                       long V_cols) {
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
  scheme_stats(settings.scheme, U_cols);  // throws std::invalid_argument when the scheme cannot apply at width d
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
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), jobs.size()));

  std::atomic<std::size_t> next_job{0};
  std::atomic<long long> steps_done{0};
  std::atomic<bool> cancel{false};
  std::mutex mutex;
  std::condition_variable finished;
  int running = threads;
  TrainControl control{&steps_done, &cancel};

  auto worker = [&]() {
    for (;;) {
      const std::size_t j = next_job.fetch_add(1);
      if (j >= jobs.size()) break;
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
    }
    std::lock_guard<std::mutex> lock(mutex);
    if (--running == 0) finished.notify_all();
  };

  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  for (int k = 0; k < threads; ++k) pool.emplace_back(worker);
  {
    std::unique_lock<std::mutex> lock(mutex);
    const auto interval = std::chrono::duration<double>(std::max(0.01, monitor_interval));
    while (running > 0) {
      if (!monitor) {
        finished.wait(lock, [&] { return running == 0; });
        break;
      }
      if (finished.wait_for(lock, interval, [&] { return running == 0; })) break;
      lock.unlock();
      bool keep_going = true;
      try {
        keep_going = monitor(steps_done.load(std::memory_order_relaxed), total);
      } catch (...) {
        keep_going = false;
      }
      if (!keep_going) cancel.store(true);
      lock.lock();
    }
  }
  for (std::thread& thread : pool) thread.join();
  if (monitor) monitor(total, total);
  return results;
}

void draw_slot(const SchemeStats& stats, long b, long N, std::uint64_t seed, long long step, long slot,
               long long* index, std::uint8_t* mask) {
  const Sampler sampler(stats, b);
  Bits bits(static_cast<std::size_t>(sampler.words));
  std::vector<std::uint64_t> scratch;
  *index = draw_index(seed, step, slot, N);
  draw_mask(sampler, seed, step, slot, bits.data(), scratch);
  const long n = is_dropconnect(stats) ? b * stats.width : stats.width;
  for (long i = 0; i < n; ++i) mask[i] = test_bit(bits.data(), i) ? 1 : 0;
}

namespace {
void bytes_to_bits(const std::uint8_t* bytes, long n, std::uint64_t* bits) {
  for (long i = 0; i < n; ++i)
    if (bytes[i] != 0) bits[i >> 6] |= std::uint64_t{1} << (i & 63);
}
}  // namespace

void masked_sgd_step(const SchemeStats& stats, Matrix& U, Matrix& V, const MatrixRef& Xb, const MatrixRef& Yb,
                     const std::uint8_t* masks, double lr) {
  const long b = V.rows(), B = Xb.cols();
  const Sampler sampler(stats, b);
  const long n = is_dropconnect(stats) ? b * stats.width : stats.width;
  BatchWork work;
  work.resize(sampler, U.rows(), b, B);
  for (long s = 0; s < B; ++s) {
    work.x[s] = Xb.col(s).data();
    work.y[s] = Yb.col(s).data();
    bytes_to_bits(masks + s * n, n, work.mask(sampler, s));
  }
  if (!generic_step(sampler, U, V, work, lr)) throw TrainingDiverged(1, "the error is not finite");
}

double stochastic_loss(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V,
                       const std::uint8_t* mask) {
  const Sampler sampler(stats, V.rows());
  const long n = is_dropconnect(stats) ? V.rows() * stats.width : stats.width;
  Bits bits(static_cast<std::size_t>(sampler.words), 0);
  bytes_to_bits(mask, n, bits.data());
  return stochastic_loss_bits(sampler, moments, U, V, bits.data());
}

}  // namespace structdrop
