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

// ---- Kernels ---------------------------------------------------------------------------------
//
// Written with a fixed evaluation order (dot products keep 8 partial sums, lane k summing the
// entries k mod 8, combined in a fixed tree; no FMA contraction: -ffp-contract=off), so every
// correct compilation gives the same bits. The hot passes are compiled twice, for the x86-64
// baseline (SSE2) and with AVX2 enabled, and picked at run time: the same results, about twice the
// speed where AVX2 exists, with the default (portable) build flags; a third copy uses AVX-512VL
// (32 vector registers for the four-column kernels; still 256-bit vectors and no FMA).

#if defined(__GNUC__) || defined(__clang__)
#define SD_INLINE inline __attribute__((always_inline))
#else
#define SD_INLINE inline
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SD_X86_DISPATCH 1
#define SD_TARGET_AVX2 __attribute__((target("avx2")))
#define SD_TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512vl")))
#else
#define SD_X86_DISPATCH 0
#define SD_TARGET_AVX2
#define SD_TARGET_AVX512
#endif

SD_INLINE double combine(const double* acc) {
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

SD_INLINE double dot(const double* __restrict x, const double* __restrict y, long n) {
  double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  long j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[j + k] * y[j + k];
  double tail = 0.0;
  for (; j < n; ++j) tail += x[j] * y[j];
  return combine(acc) + tail;
}

// y += alpha x
SD_INLINE void axpy(double* __restrict y, double alpha, const double* __restrict x, long n) {
  for (long j = 0; j < n; ++j) y[j] += alpha * x[j];
}

// v -= cv * xt (in place), returning dot(v_new, xn).
SD_INLINE double update_dot(double* __restrict v, double cv, const double* __restrict xt,
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
  return combine(acc) + tail;
}

// u -= cu * et (in place) and en += hn * u_new.
SD_INLINE void update_accumulate(double* __restrict u, double cu, const double* __restrict et, double hn,
                                 double* __restrict en, long n) {
  for (long j = 0; j < n; ++j) {
    const double value = u[j] - cu * et[j];
    u[j] = value;
    en[j] += hn * value;
  }
}

// out[j] = bit j of `bits` (0 or 1) times xs[j], four entries per table look-up.
alignas(32) constexpr double kNibble[16][4] = {
    {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {1, 1, 0, 0}, {0, 0, 1, 0}, {1, 0, 1, 0}, {0, 1, 1, 0}, {1, 1, 1, 0},
    {0, 0, 0, 1}, {1, 0, 0, 1}, {0, 1, 0, 1}, {1, 1, 0, 1}, {0, 0, 1, 1}, {1, 0, 1, 1}, {0, 1, 1, 1}, {1, 1, 1, 1}};

SD_INLINE void expand_mask(double* __restrict out, const double* __restrict xs, const std::uint64_t* bits, long n) {
  long j = 0;
  for (; j + 4 <= n; j += 4) {
    const double* t = kNibble[(bits[j >> 6] >> (j & 63)) & 15u];
    for (int k = 0; k < 4; ++k) out[j + k] = t[k] * xs[j + k];
  }
  for (; j < n; ++j) out[j] = static_cast<double>((bits[j >> 6] >> (j & 63)) & 1u) * xs[j];
}

inline void prefetch(const double* x, long n) {
#if defined(__GNUC__) || defined(__clang__)
  for (long j = 0; j < n; j += 8) __builtin_prefetch(x + j);
  __builtin_prefetch(x + n - 1);
#else
  (void)x;
  (void)n;
#endif
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

// Mask layouts. Unit schemes: d bits, bit i = unit i kept. DropConnect: column i of the b x d mask
// occupies words [i wb, (i+1) wb) with wb = ceil(b / 64); entry (j, i) is bit j of that range.
struct Sampler {
  SchemeKind kind = SchemeKind::none;
  long d = 0, b = 0, r = 1;
  long wb = 0;                // dropconnect: words per column
  long words = 0;             // words of one mask
  rng::BernoulliBits p;       // per unit, per block, per seed or per entry
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
      wb = words_for(b);
      words = d * wb;
      inv_theta = 1.0 / stats.params.theta;
    } else {
      words = words_for(d);
      scale.resize(static_cast<std::size_t>(d));
      for (long i = 0; i < d; ++i) scale[i] = kind == SchemeKind::none ? 1.0 : 1.0 / stats.mean[i];
    }
  }

  long entries() const { return kind == SchemeKind::dropconnect ? b * d : d; }

  // Position in the bit layout of entry e of the byte layout (unit i; or (j, i) at e = i b + j).
  long bit_of(long e) const { return kind == SchemeKind::dropconnect ? (e / b) * wb * 64 + e % b : e; }

  // Bernoulli lanes [0, lanes) into out (words_for(lanes) words; bits past `lanes` cleared).
  static void lanes(rng::Stream& stream, const rng::BernoulliBits& q, long lanes, std::uint64_t* out) {
    const long w = words_for(lanes);
    for (long k = 0; k < w; ++k) out[k] = rng::bernoulli64(stream, q);
    if (lanes & 63) out[w - 1] &= (std::uint64_t{1} << (lanes & 63)) - 1;
  }

  // The mask of one slot.
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
        for (long i = 0; i < d; ++i) lanes(stream, p, b, out + i * wb);
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
      for (long j = 0; j < b; ++j) W(j, i) = test_bit(mask + i * sampler.wb, j) ? V(j, i) * sampler.inv_theta : 0.0;
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

// ---- The passes over the kept columns (compiled for the baseline and for AVX2) --------------

// Unit schemes, batch 1: the update of step t (kept set `now`, from h_now, e_now, x_now) fused
// with the forward pass of step t+1 (kept set `next`, into h_next, e_next, with x_next; e_next
// holds -y_next on entry). Either set may be empty (the first forward pass; the last update).
// The kept columns are split into those kept at both steps, only at t and only at t+1, and each
// group is processed four columns at a time, so that the shared vectors (e_now, x_now, x_next,
// e_next) are loaded once per four columns.
struct UnitPass {
  long a, b, words;
  const std::uint64_t* now;
  const std::uint64_t* next;
  const double* scale;
  const double* h_now;
  double* h_next;
  const double* e_now;
  double* e_next;
  const double* x_now;
  const double* x_next;
  double lr;
  double* U;
  double* V;
  long* lists;  // 3 d longs of scratch
};

// Four-wide vectors of the GCC/Clang vector extension: compiled to two SSE2 registers on the
// baseline and to one AVX2 register where enabled, with the same lane-wise semantics.
// (The helpers are always inlined, so no vector crosses a function boundary: -Wpsabi is moot.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef double v4 __attribute__((vector_size(32)));

SD_INLINE v4 vload(const double* p) {
  v4 r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
SD_INLINE void vstore(double* p, v4 x) { std::memcpy(p, &x, sizeof x); }
SD_INLINE v4 vsplat(double x) { return v4{x, x, x, x}; }
// Lanes 0..3 of lo hold entries j = 0..3 mod 8, of hi entries 4..7 mod 8: the order of combine().
SD_INLINE double vcombine(v4 lo, v4 hi) {
  const v4 s = lo + hi;
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// g[c] = dot(u_c, e) with the old u_c, and u_c -= cu[c] e, in one pass.
template <int K>
SD_INLINE void dot_then_update(double* const* u, const double* cu, const double* e, long n, double* g) {
  v4 lo[K], hi[K], c4[K];
  for (int c = 0; c < K; ++c) {
    lo[c] = hi[c] = vsplat(0.0);
    c4[c] = vsplat(cu[c]);
  }
  long j = 0;
  for (; j + 8 <= n; j += 8) {
    const v4 e0 = vload(e + j), e1 = vload(e + j + 4);
    for (int c = 0; c < K; ++c) {
      const v4 u0 = vload(u[c] + j), u1 = vload(u[c] + j + 4);
      lo[c] += u0 * e0;
      hi[c] += u1 * e1;
      vstore(u[c] + j, u0 - c4[c] * e0);
      vstore(u[c] + j + 4, u1 - c4[c] * e1);
    }
  }
  for (int c = 0; c < K; ++c) {
    double tail = 0.0;
    for (long i = j; i < n; ++i) {
      const double old = u[c][i];
      tail += old * e[i];
      u[c][i] = old - cu[c] * e[i];
    }
    g[c] = vcombine(lo[c], hi[c]) + tail;
  }
}

// v_c -= cv[c] xt, then h[c] = dot(v_c, xn) with the new v_c, in one pass.
template <int K>
SD_INLINE void update_then_dot(double* const* v, const double* cv, const double* xt, const double* xn, long n,
                               double* h) {
  v4 lo[K], hi[K], c4[K];
  for (int c = 0; c < K; ++c) {
    lo[c] = hi[c] = vsplat(0.0);
    c4[c] = vsplat(cv[c]);
  }
  long j = 0;
  for (; j + 8 <= n; j += 8) {
    const v4 t0 = vload(xt + j), t1 = vload(xt + j + 4), n0 = vload(xn + j), n1 = vload(xn + j + 4);
    for (int c = 0; c < K; ++c) {
      const v4 w0 = vload(v[c] + j) - c4[c] * t0, w1 = vload(v[c] + j + 4) - c4[c] * t1;
      vstore(v[c] + j, w0);
      vstore(v[c] + j + 4, w1);
      lo[c] += w0 * n0;
      hi[c] += w1 * n1;
    }
  }
  for (int c = 0; c < K; ++c) {
    double tail = 0.0;
    for (long i = j; i < n; ++i) {
      const double value = v[c][i] - cv[c] * xt[i];
      v[c][i] = value;
      tail += value * xn[i];
    }
    h[c] = vcombine(lo[c], hi[c]) + tail;
  }
}

// v_c -= cv[c] xt.
template <int K>
SD_INLINE void update_only(double* const* v, const double* cv, const double* xt, long n) {
  v4 c4[K];
  for (int c = 0; c < K; ++c) c4[c] = vsplat(cv[c]);
  long j = 0;
  for (; j + 4 <= n; j += 4) {
    const v4 t = vload(xt + j);
    for (int c = 0; c < K; ++c) vstore(v[c] + j, vload(v[c] + j) - c4[c] * t);
  }
  for (; j < n; ++j)
    for (int c = 0; c < K; ++c) v[c][j] = v[c][j] - cv[c] * xt[j];
}

// h[c] = dot(v_c, x).
template <int K>
SD_INLINE void dots(double* const* v, const double* x, long n, double* h) {
  v4 lo[K], hi[K];
  for (int c = 0; c < K; ++c) lo[c] = hi[c] = vsplat(0.0);
  long j = 0;
  for (; j + 8 <= n; j += 8) {
    const v4 x0 = vload(x + j), x1 = vload(x + j + 4);
    for (int c = 0; c < K; ++c) {
      lo[c] += vload(v[c] + j) * x0;
      hi[c] += vload(v[c] + j + 4) * x1;
    }
  }
  for (int c = 0; c < K; ++c) {
    double tail = 0.0;
    for (long i = j; i < n; ++i) tail += v[c][i] * x[i];
    h[c] = vcombine(lo[c], hi[c]) + tail;
  }
}

// e += h[0] u_0, then + h[1] u_1, ... (in this order, entry by entry).
template <int K>
SD_INLINE void accumulate(double* e, const double* h, double* const* u, long n) {
  v4 h4[K];
  for (int c = 0; c < K; ++c) h4[c] = vsplat(h[c]);
  long j = 0;
  for (; j + 4 <= n; j += 4) {
    v4 acc = vload(e + j);
    for (int c = 0; c < K; ++c) acc += h4[c] * vload(u[c] + j);
    vstore(e + j, acc);
  }
  for (; j < n; ++j) {
    double acc = e[j];
    for (int c = 0; c < K; ++c) acc += h[c] * u[c][j];
    e[j] = acc;
  }
}

// Columns kept at both steps: g from the old U_i, U_i and V_i updated, h_next from the new V_i,
// e_next += h_next U_i (new).
template <int K>
SD_INLINE void both_group(const UnitPass& p, const long* idx) {
  double* u[K];
  double* v[K];
  double cu[K], cv[K], g[K], h[K];
  for (int c = 0; c < K; ++c) {
    u[c] = p.U + idx[c] * p.a;
    v[c] = p.V + idx[c] * p.b;
    cu[c] = p.lr * p.h_now[idx[c]];
  }
  dot_then_update<K>(u, cu, p.e_now, p.a, g);
  for (int c = 0; c < K; ++c) cv[c] = p.lr * (p.scale[idx[c]] * g[c]);
  update_then_dot<K>(v, cv, p.x_now, p.x_next, p.b, h);
  for (int c = 0; c < K; ++c) {
    h[c] = p.scale[idx[c]] * h[c];
    p.h_next[idx[c]] = h[c];
  }
  accumulate<K>(p.e_next, h, u, p.a);
}

// Columns kept at step t only: the update.
template <int K>
SD_INLINE void now_group(const UnitPass& p, const long* idx) {
  double* u[K];
  double* v[K];
  double cu[K], cv[K], g[K];
  for (int c = 0; c < K; ++c) {
    u[c] = p.U + idx[c] * p.a;
    v[c] = p.V + idx[c] * p.b;
    cu[c] = p.lr * p.h_now[idx[c]];
  }
  dot_then_update<K>(u, cu, p.e_now, p.a, g);
  for (int c = 0; c < K; ++c) cv[c] = p.lr * (p.scale[idx[c]] * g[c]);
  update_only<K>(v, cv, p.x_now, p.b);
}

// Columns kept at step t+1 only: the forward pass.
template <int K>
SD_INLINE void next_group(const UnitPass& p, const long* idx) {
  double* u[K];
  double* v[K];
  double h[K];
  for (int c = 0; c < K; ++c) {
    u[c] = p.U + idx[c] * p.a;
    v[c] = p.V + idx[c] * p.b;
  }
  dots<K>(v, p.x_next, p.b, h);
  for (int c = 0; c < K; ++c) {
    h[c] = p.scale[idx[c]] * h[c];
    p.h_next[idx[c]] = h[c];
  }
  accumulate<K>(p.e_next, h, u, p.a);
}

SD_INLINE void unit_pass_body(const UnitPass& p) {
  const long d = p.words * 64;
  long* both = p.lists;
  long* only_now = p.lists + d;
  long* only_next = p.lists + 2 * d;
  long n_both = 0, n_now = 0, n_next = 0;
  for (long w = 0; w < p.words; ++w) {
    const std::uint64_t now = p.now[w], next = p.next[w];
    for (std::uint64_t bits = now & next; bits != 0; bits &= bits - 1) both[n_both++] = (w << 6) + __builtin_ctzll(bits);
    for (std::uint64_t bits = now & ~next; bits != 0; bits &= bits - 1)
      only_now[n_now++] = (w << 6) + __builtin_ctzll(bits);
    for (std::uint64_t bits = next & ~now; bits != 0; bits &= bits - 1)
      only_next[n_next++] = (w << 6) + __builtin_ctzll(bits);
  }
  long k = 0;
  for (; k + 4 <= n_both; k += 4) both_group<4>(p, both + k);
  for (; k < n_both; ++k) both_group<1>(p, both + k);
  for (k = 0; k + 4 <= n_now; k += 4) now_group<4>(p, only_now + k);
  for (; k < n_now; ++k) now_group<1>(p, only_now + k);
  for (k = 0; k + 4 <= n_next; k += 4) next_group<4>(p, only_next + k);
  for (; k < n_next; ++k) next_group<1>(p, only_next + k);
}

// DropConnect, batch 1: the same fusion over every column; xs = x / theta; the masks in the
// dropconnect layout (now or next may be null: no update, or no forward pass).
struct ConnectPass {
  long a, b, d, wb;
  const std::uint64_t* now;
  const std::uint64_t* next;
  const double* h_now;
  double* h_next;
  const double* e_now;
  double* e_next;
  const double* xs_now;
  const double* xs_next;
  double lr;
  double* U;
  double* V;
  double* buf_now;   // b doubles of scratch
  double* buf_next;  // b doubles of scratch
};

// K consecutive columns i0 .. i0+K-1 of the DropConnect pass.
template <int K>
SD_INLINE void connect_group(const ConnectPass& p, long i0) {
  double* u[K];
  double* v[K];
  double cu[K] = {}, g[K] = {}, h[K] = {};
  for (int c = 0; c < K; ++c) {
    u[c] = p.U + (i0 + c) * p.a;
    v[c] = p.V + (i0 + c) * p.b;
  }
  if (p.now != nullptr) {
    for (int c = 0; c < K; ++c) cu[c] = p.lr * p.h_now[i0 + c];
    dot_then_update<K>(u, cu, p.e_now, p.a, g);  // g from the old U_i; U_i updated
    for (int c = 0; c < K; ++c) {
      const double cv = p.lr * g[c];
      expand_mask(p.buf_now, p.xs_now, p.now + (i0 + c) * p.wb, p.b);
      if (p.next != nullptr) {
        expand_mask(p.buf_next, p.xs_next, p.next + (i0 + c) * p.wb, p.b);
        update_then_dot<1>(v + c, &cv, p.buf_now, p.buf_next, p.b, h + c);
      } else {
        update_only<1>(v + c, &cv, p.buf_now, p.b);
      }
    }
  } else {
    for (int c = 0; c < K; ++c) {
      expand_mask(p.buf_next, p.xs_next, p.next + (i0 + c) * p.wb, p.b);
      dots<1>(v + c, p.buf_next, p.b, h + c);
    }
  }
  if (p.next != nullptr) {
    for (int c = 0; c < K; ++c) p.h_next[i0 + c] = h[c];
    accumulate<K>(p.e_next, h, u, p.a);
  }
}

SD_INLINE void connect_pass_body(const ConnectPass& p) {
  long i = 0;
  for (; i + 4 <= p.d; i += 4) connect_group<4>(p, i);
  for (; i < p.d; ++i) connect_group<1>(p, i);
}

// Minibatch (any scheme): forward pass of every slot from the old U, V, then the mean update.
struct BatchWork {
  long B = 0;
  std::vector<const double*> x, y;  // the B samples
  Bits masks;                       // B masks of sampler.words words
  Matrix H, G, E;                   // h (d x B), g (d x B), eps (a x B)
  std::vector<double> xs, mx;       // dropconnect: x / theta, and the masked x of one column

  void resize(const Sampler& sampler, long a, long b, long batch) {
    B = batch;
    x.assign(static_cast<std::size_t>(batch), nullptr);
    y.assign(static_cast<std::size_t>(batch), nullptr);
    masks.assign(static_cast<std::size_t>(batch * sampler.words), 0);
    H.resize(sampler.d, batch);
    G.resize(sampler.d, batch);
    E.resize(a, batch);
    xs.assign(static_cast<std::size_t>(b * batch), 0.0);
    mx.assign(static_cast<std::size_t>(b), 0.0);
  }
  const std::uint64_t* mask(const Sampler& sampler, long s) const { return masks.data() + s * sampler.words; }
  std::uint64_t* mask(const Sampler& sampler, long s) { return masks.data() + s * sampler.words; }
};

// Returns false when an error vector is not finite (U, V are not updated then).
SD_INLINE bool batch_step_body(const Sampler& sampler, Matrix& U, Matrix& V, BatchWork& work, double lr) {
  const long a = U.rows(), b = V.rows(), d = U.cols(), B = work.B;
  const bool connect = sampler.kind == SchemeKind::dropconnect;
  double* mx = work.mx.data();
  for (long s = 0; s < B; ++s) {
    const double* x = work.x[s];
    const double* y = work.y[s];
    const std::uint64_t* mask = work.mask(sampler, s);
    double* h = work.H.col(s).data();
    double* g = work.G.col(s).data();
    double* eps = work.E.col(s).data();
    for (long j = 0; j < a; ++j) eps[j] = -y[j];
    if (connect) {
      double* xs = work.xs.data() + s * b;
      for (long j = 0; j < b; ++j) xs[j] = x[j] * sampler.inv_theta;
      for (long i = 0; i < d; ++i) {
        expand_mask(mx, xs, mask + i * sampler.wb, b);
        h[i] = dot(V.col(i).data(), mx, b);
        axpy(eps, h[i], U.col(i).data(), a);
      }
      if (!all_finite(eps, a)) return false;
      for (long i = 0; i < d; ++i) g[i] = dot(U.col(i).data(), eps, a);
    } else {
      for (long w = 0; w < sampler.words; ++w)
        for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
          const long i = (w << 6) + __builtin_ctzll(bits);
          h[i] = sampler.scale[i] * dot(V.col(i).data(), x, b);
          axpy(eps, h[i], U.col(i).data(), a);
        }
      if (!all_finite(eps, a)) return false;
      for (long w = 0; w < sampler.words; ++w)
        for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
          const long i = (w << 6) + __builtin_ctzll(bits);
          g[i] = sampler.scale[i] * dot(U.col(i).data(), eps, a);
        }
    }
  }
  const double c = lr / static_cast<double>(B);
  for (long i = 0; i < d; ++i) {
    double* u = U.col(i).data();
    double* v = V.col(i).data();
    for (long s = 0; s < B; ++s) {
      const std::uint64_t* mask = work.mask(sampler, s);
      if (connect) {
        axpy(u, -c * work.H(i, s), work.E.col(s).data(), a);
        expand_mask(mx, work.xs.data() + s * b, mask + i * sampler.wb, b);
        axpy(v, -c * work.G(i, s), mx, b);
      } else if (test_bit(mask, i)) {
        axpy(u, -c * work.H(i, s), work.E.col(s).data(), a);
        axpy(v, -c * work.G(i, s), work.x[s], b);
      }
    }
  }
  return true;
}

void unit_pass_baseline(const UnitPass& p) { unit_pass_body(p); }
void connect_pass_baseline(const ConnectPass& p) { connect_pass_body(p); }
bool batch_step_baseline(const Sampler& s, Matrix& U, Matrix& V, BatchWork& w, double lr) {
  return batch_step_body(s, U, V, w, lr);
}
#if SD_X86_DISPATCH
SD_TARGET_AVX2 void unit_pass_avx2(const UnitPass& p) { unit_pass_body(p); }
SD_TARGET_AVX2 void connect_pass_avx2(const ConnectPass& p) { connect_pass_body(p); }
SD_TARGET_AVX2 bool batch_step_avx2(const Sampler& s, Matrix& U, Matrix& V, BatchWork& w, double lr) {
  return batch_step_body(s, U, V, w, lr);
}
SD_TARGET_AVX512 void unit_pass_avx512(const UnitPass& p) { unit_pass_body(p); }
SD_TARGET_AVX512 void connect_pass_avx512(const ConnectPass& p) { connect_pass_body(p); }
SD_TARGET_AVX512 bool batch_step_avx512(const Sampler& s, Matrix& U, Matrix& V, BatchWork& w, double lr) {
  return batch_step_body(s, U, V, w, lr);
}
#endif

enum Isa : int { isa_auto = 0, isa_baseline = 1, isa_avx2 = 2, isa_avx512 = 3 };
std::atomic<int> isa_request{isa_auto};

int best_isa() {
#if SD_X86_DISPATCH
  static const int best = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                                  __builtin_cpu_supports("avx2")
                              ? isa_avx512
                          : __builtin_cpu_supports("avx2") ? isa_avx2
                                                           : isa_baseline;
  return best;
#else
  return isa_baseline;
#endif
}

int active_isa() {
  const int request = isa_request.load(std::memory_order_relaxed);
  return request == isa_auto ? best_isa() : request;
}

struct Kernels {
  void (*unit_pass)(const UnitPass&) = unit_pass_baseline;
  void (*connect_pass)(const ConnectPass&) = connect_pass_baseline;
  bool (*batch_step)(const Sampler&, Matrix&, Matrix&, BatchWork&, double) = batch_step_baseline;

  Kernels() {
#if SD_X86_DISPATCH
    const int isa = active_isa();
    if (isa == isa_avx2) {
      unit_pass = unit_pass_avx2;
      connect_pass = connect_pass_avx2;
      batch_step = batch_step_avx2;
    } else if (isa == isa_avx512) {
      unit_pass = unit_pass_avx512;
      connect_pass = connect_pass_avx512;
      batch_step = batch_step_avx512;
    }
#endif
  }
};

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
    const long a = data_.a, b = data_.b, d = U_.cols(), words = sampler_.words;
    const bool connect = sampler_.kind == SchemeKind::dropconnect;
    const long long T = settings_.iterations;
    const std::uint64_t seed = settings_.seed;
    const Kernels kernels;
    Bits now(static_cast<std::size_t>(words)), next(static_cast<std::size_t>(words));
    const Bits none(static_cast<std::size_t>(words), 0);
    std::vector<std::uint64_t> scratch;
    std::vector<double> h_now(static_cast<std::size_t>(d)), h_next(static_cast<std::size_t>(d));
    std::vector<double> e_now(static_cast<std::size_t>(a)), e_next(static_cast<std::size_t>(a));
    std::vector<double> xs_now(connect ? b : 0), xs_next(connect ? b : 0), buf_now(connect ? b : 0),
        buf_next(connect ? b : 0);
    std::vector<long> lists(connect ? 0 : static_cast<std::size_t>(3 * 64 * words));

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
      for (long j = 0; j < a; ++j) e_next[j] = -y[j];
      if (connect) {
        const double* x = xcol(index_next);
        for (long j = 0; j < b; ++j) xs_next[j] = x[j] * sampler_.inv_theta;
      }
    };
    // One pass: update with `now` (if update) and forward with `next` (if forward).
    auto pass = [&](bool update, bool forward, double lr, const double* x_now) {
      if (connect) {
        const ConnectPass p{a,
                            b,
                            d,
                            sampler_.wb,
                            update ? now.data() : nullptr,
                            forward ? next.data() : nullptr,
                            h_now.data(),
                            h_next.data(),
                            e_now.data(),
                            e_next.data(),
                            xs_now.data(),
                            xs_next.data(),
                            lr,
                            U_.data(),
                            V_.data(),
                            buf_now.data(),
                            buf_next.data()};
        kernels.connect_pass(p);
      } else {
        const UnitPass p{a,
                         b,
                         words,
                         update ? now.data() : none.data(),
                         forward ? next.data() : none.data(),
                         sampler_.scale.data(),
                         h_now.data(),
                         h_next.data(),
                         e_now.data(),
                         e_next.data(),
                         x_now,
                         forward ? xcol(index_next) : nullptr,
                         lr,
                         U_.data(),
                         V_.data(),
                         lists.data()};
        kernels.unit_pass(p);
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
    const long B = settings_.batch_size;
    const long long T = settings_.iterations;
    const std::uint64_t seed = settings_.seed;
    const Kernels kernels;
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
      if (!kernels.batch_step(sampler_, U_, V_, work, step_size(settings_, t))) diverged(t - 1, "the error (U, V)");
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
  scheme_stats(settings.scheme, U_cols, /*dense_cbar=*/false);  // throws std::invalid_argument when the scheme cannot apply at width d
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
  const long n = sampler.entries();
  for (long e = 0; e < n; ++e) mask[e] = test_bit(bits.data(), sampler.bit_of(e)) ? 1 : 0;
}

namespace {
void bytes_to_bits(const Sampler& sampler, const std::uint8_t* bytes, std::uint64_t* bits) {
  const long n = sampler.entries();
  for (long e = 0; e < n; ++e)
    if (bytes[e] != 0) {
      const long i = sampler.bit_of(e);
      bits[i >> 6] |= std::uint64_t{1} << (i & 63);
    }
}
}  // namespace

void masked_sgd_step(const SchemeStats& stats, Matrix& U, Matrix& V, const MatrixRef& Xb, const MatrixRef& Yb,
                     const std::uint8_t* masks, double lr) {
  const long b = V.rows(), B = Xb.cols();
  const Sampler sampler(stats, b);
  const long n = sampler.entries();
  BatchWork work;
  work.resize(sampler, U.rows(), b, B);
  for (long s = 0; s < B; ++s) {
    work.x[s] = Xb.col(s).data();
    work.y[s] = Yb.col(s).data();
    bytes_to_bits(sampler, masks + s * n, work.mask(sampler, s));
  }
  const Kernels kernels;
  if (!kernels.batch_step(sampler, U, V, work, lr)) throw TrainingDiverged(1, "the error is not finite");
}

double stochastic_loss(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V,
                       const std::uint8_t* mask) {
  const Sampler sampler(stats, V.rows());
  Bits bits(static_cast<std::size_t>(sampler.words), 0);
  bytes_to_bits(sampler, mask, bits.data());
  return stochastic_loss_bits(sampler, moments, U, V, bits.data());
}

std::string sgd_kernel_isa() {
  switch (active_isa()) {
    case isa_avx2: return "avx2";
    case isa_avx512: return "avx512";
    default: return "baseline";
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
