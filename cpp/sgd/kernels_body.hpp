// The bodies of the masked-SGD kernels, included once by each kernel translation unit
// (kernels_baseline.cpp, kernels_avx2.cpp, kernels_avx512.cpp), which defines
// STRUCTDROP_KERNEL_SET_FUNCTION, the name of its entry point, first. The arithmetic is the same
// in every copy (see kernels.hpp); only the instructions the compiler may use differ.
// Pure C++: no Python types.
#ifndef STRUCTDROP_KERNEL_SET_FUNCTION
#error "define STRUCTDROP_KERNEL_SET_FUNCTION before including sgd/kernels_body.hpp"
#endif

#include "sgd/kernels.hpp"
#include "sgd/vec.hpp"

namespace structdrop::sgd_kernels {
namespace {

// u_c -= c[c] xt and g[c] = dot(u_c, xd), in one pass: with the old u_c (kNew false) or the
// updated one (kNew true). The same operations in the same order either way.
template <int K, bool kNew>
SD_INLINE void update_and_dot(double* const* u, const double* c, const double* xt, const double* xd, std::ptrdiff_t n,
                              double* g) {
  v4 lo[K], hi[K], c4[K];
  for (int k = 0; k < K; ++k) {
    lo[k] = hi[k] = vsplat(0.0);
    c4[k] = vsplat(c[k]);
  }
  std::ptrdiff_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const v4 t0 = vload(xt + j), t1 = vload(xt + j + 4), d0 = vload(xd + j), d1 = vload(xd + j + 4);
    for (int k = 0; k < K; ++k) {
      const v4 u0 = vload(u[k] + j), u1 = vload(u[k] + j + 4);
      const v4 w0 = u0 - c4[k] * t0, w1 = u1 - c4[k] * t1;
      vstore(u[k] + j, w0);
      vstore(u[k] + j + 4, w1);
      lo[k] += (kNew ? w0 : u0) * d0;
      hi[k] += (kNew ? w1 : u1) * d1;
    }
  }
  for (int k = 0; k < K; ++k) {
    double tail = 0.0;
    for (std::ptrdiff_t i = j; i < n; ++i) {
      const double old = u[k][i];
      const double value = old - c[k] * xt[i];
      u[k][i] = value;
      tail += (kNew ? value : old) * xd[i];
    }
    g[k] = vcombine(lo[k], hi[k]) + tail;
  }
}

// g[c] = dot(u_c, e) with the old u_c, and u_c -= cu[c] e, in one pass.
template <int K>
SD_INLINE void dot_then_update(double* const* u, const double* cu, const double* e, std::ptrdiff_t n, double* g) {
  update_and_dot<K, false>(u, cu, e, e, n, g);
}

// v_c -= cv[c] xt, then h[c] = dot(v_c, xn) with the new v_c, in one pass.
template <int K>
SD_INLINE void update_then_dot(double* const* v, const double* cv, const double* xt, const double* xn, std::ptrdiff_t n,
                               double* h) {
  update_and_dot<K, true>(v, cv, xt, xn, n, h);
}

// v_c -= cv[c] xt.
template <int K>
SD_INLINE void update_only(double* const* v, const double* cv, const double* xt, std::ptrdiff_t n) {
  v4 c4[K];
  for (int c = 0; c < K; ++c) c4[c] = vsplat(cv[c]);
  std::ptrdiff_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const v4 t = vload(xt + j);
    for (int c = 0; c < K; ++c) vstore(v[c] + j, vload(v[c] + j) - c4[c] * t);
  }
  for (; j < n; ++j)
    for (int c = 0; c < K; ++c) v[c][j] = v[c][j] - cv[c] * xt[j];
}

// h[c] = dot(v_c, x).
template <int K>
SD_INLINE void dots(double* const* v, const double* x, std::ptrdiff_t n, double* h) {
  v4 lo[K], hi[K];
  for (int c = 0; c < K; ++c) lo[c] = hi[c] = vsplat(0.0);
  std::ptrdiff_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const v4 x0 = vload(x + j), x1 = vload(x + j + 4);
    for (int c = 0; c < K; ++c) {
      lo[c] += vload(v[c] + j) * x0;
      hi[c] += vload(v[c] + j + 4) * x1;
    }
  }
  for (int c = 0; c < K; ++c) {
    double tail = 0.0;
    for (std::ptrdiff_t i = j; i < n; ++i) tail += v[c][i] * x[i];
    h[c] = vcombine(lo[c], hi[c]) + tail;
  }
}

// e += h[0] u_0, then + h[1] u_1, ... (in this order, entry by entry).
template <int K>
SD_INLINE void accumulate(double* e, const double* h, double* const* u, std::ptrdiff_t n) {
  v4 h4[K];
  for (int c = 0; c < K; ++c) h4[c] = vsplat(h[c]);
  std::ptrdiff_t j = 0;
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

// What the groups kept at step t share: the columns idx of U and V, U's columns updated (g from
// the old ones), and cv, the coefficients of V's update.
template <int K>
SD_INLINE void update_u_columns(const UnitPass& p, const std::ptrdiff_t* idx, double** u, double** v, double* cv) {
  double cu[K], g[K];
  for (int c = 0; c < K; ++c) {
    u[c] = p.U + idx[c] * p.a;
    v[c] = p.V + idx[c] * p.b;
    cu[c] = p.lr * p.h_now[idx[c]];
  }
  dot_then_update<K>(u, cu, p.e_now, p.a, g);
  for (int c = 0; c < K; ++c) cv[c] = p.lr * (p.scale[idx[c]] * g[c]);
}

// Columns kept at both steps: g from the old U_i, U_i and V_i updated, h_next from the new V_i,
// e_next += h_next U_i (new).
template <int K>
SD_INLINE void both_group(const UnitPass& p, const std::ptrdiff_t* idx) {
  double* u[K];
  double* v[K];
  double cv[K], h[K];
  update_u_columns<K>(p, idx, u, v, cv);
  update_then_dot<K>(v, cv, p.x_now, p.x_next, p.b, h);
  for (int c = 0; c < K; ++c) {
    h[c] = p.scale[idx[c]] * h[c];
    p.h_next[idx[c]] = h[c];
  }
  accumulate<K>(p.e_next, h, u, p.a);
}

// Columns kept at step t only: the update.
template <int K>
SD_INLINE void now_group(const UnitPass& p, const std::ptrdiff_t* idx) {
  double* u[K];
  double* v[K];
  double cv[K];
  update_u_columns<K>(p, idx, u, v, cv);
  update_only<K>(v, cv, p.x_now, p.b);
}

// Columns kept at step t+1 only: the forward pass.
template <int K>
SD_INLINE void next_group(const UnitPass& p, const std::ptrdiff_t* idx) {
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

// The kept columns are split into those kept at both steps, only at t and only at t+1, and each
// group is processed four columns at a time, so that the shared vectors (e_now, x_now, x_next,
// e_next) are loaded once per four columns.
SD_INLINE void unit_pass_body(const UnitPass& p) {
  const std::ptrdiff_t d = p.words * 64;
  std::ptrdiff_t* both = p.lists;
  std::ptrdiff_t* only_now = p.lists + d;
  std::ptrdiff_t* only_next = p.lists + 2 * d;
  std::ptrdiff_t n_both = 0, n_now = 0, n_next = 0;
  for (std::ptrdiff_t w = 0; w < p.words; ++w) {
    const std::uint64_t now = p.now[w], next = p.next[w];
    for (std::uint64_t bits = now & next; bits != 0; bits &= bits - 1)
      both[n_both++] = (w << 6) + portable::ctz64(bits);
    for (std::uint64_t bits = now & ~next; bits != 0; bits &= bits - 1)
      only_now[n_now++] = (w << 6) + portable::ctz64(bits);
    for (std::uint64_t bits = next & ~now; bits != 0; bits &= bits - 1)
      only_next[n_next++] = (w << 6) + portable::ctz64(bits);
  }
  std::ptrdiff_t k = 0;
  for (; k + 4 <= n_both; k += 4) both_group<4>(p, both + k);
  for (; k < n_both; ++k) both_group<1>(p, both + k);
  for (k = 0; k + 4 <= n_now; k += 4) now_group<4>(p, only_now + k);
  for (; k < n_now; ++k) now_group<1>(p, only_now + k);
  for (k = 0; k + 4 <= n_next; k += 4) next_group<4>(p, only_next + k);
  for (; k < n_next; ++k) next_group<1>(p, only_next + k);
}

// K consecutive columns i0 .. i0+K-1 of the DropConnect pass.
template <int K>
SD_INLINE void connect_group(const ConnectPass& p, std::ptrdiff_t i0) {
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
      expand_mask(p.buf_now, p.x_now, p.now + (i0 + c) * p.wb, p.b);
      if (p.next != nullptr) {
        expand_mask(p.buf_next, p.x_next, p.next + (i0 + c) * p.wb, p.b);
        update_then_dot<1>(v + c, &cv, p.buf_now, p.buf_next, p.b, h + c);
      } else {
        update_only<1>(v + c, &cv, p.buf_now, p.b);
      }
    }
  } else {
    for (int c = 0; c < K; ++c) {
      expand_mask(p.buf_next, p.x_next, p.next + (i0 + c) * p.wb, p.b);
      dots<1>(v + c, p.buf_next, p.b, h + c);
    }
  }
  if (p.next != nullptr) {
    for (int c = 0; c < K; ++c) p.h_next[i0 + c] = h[c];
    accumulate<K>(p.e_next, h, u, p.a);
  }
}

SD_INLINE void connect_pass_body(const ConnectPass& p) {
  std::ptrdiff_t i = 0;
  for (; i + 4 <= p.d; i += 4) connect_group<4>(p, i);
  for (; i < p.d; ++i) connect_group<1>(p, i);
}

// Minibatch: returns false when an error vector is not finite (U, V are not updated then).
SD_INLINE bool batch_step_body(const BatchPass& p) {
  // Every field in a local: stores through the double pointers below cannot then alias them, so
  // the compiler keeps them in registers and vectorises the loops.
  const std::ptrdiff_t a = p.a, b = p.b, d = p.d, B = p.B, words = p.words, wb = p.wb;
  const bool connect = p.connect;
  const double inv_theta = p.inv_theta;
  const double* const scale = p.scale;
  const double* const* const xcols = p.x;
  const double* const* const ycols = p.y;
  const std::uint64_t* const masks = p.masks;
  double* const H = p.H;
  double* const G = p.G;
  double* const E = p.E;
  double* const XS = p.xs;
  double* const mx = p.mx;
  double* const U = p.U;
  double* const V = p.V;
  for (std::ptrdiff_t s = 0; s < B; ++s) {
    const double* x = xcols[s];
    const double* y = ycols[s];
    const std::uint64_t* mask = masks + s * words;
    double* h = H + s * d;
    double* g = G + s * d;
    double* eps = E + s * a;
    for (std::ptrdiff_t j = 0; j < a; ++j) eps[j] = -y[j];
    if (connect) {
      double* xs = XS + s * b;
      for (std::ptrdiff_t j = 0; j < b; ++j) xs[j] = x[j] * inv_theta;
      for (std::ptrdiff_t i = 0; i < d; ++i) {
        expand_mask(mx, xs, mask + i * wb, b);
        h[i] = dot(V + i * b, mx, b);
        axpy(eps, h[i], U + i * a, a);
      }
      if (!all_finite(eps, a)) return false;
      for (std::ptrdiff_t i = 0; i < d; ++i) g[i] = dot(U + i * a, eps, a);
    } else {
      for (std::ptrdiff_t w = 0; w < words; ++w)
        for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
          const std::ptrdiff_t i = (w << 6) + portable::ctz64(bits);
          h[i] = scale[i] * dot(V + i * b, x, b);
          axpy(eps, h[i], U + i * a, a);
        }
      if (!all_finite(eps, a)) return false;
      for (std::ptrdiff_t w = 0; w < words; ++w)
        for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
          const std::ptrdiff_t i = (w << 6) + portable::ctz64(bits);
          g[i] = scale[i] * dot(U + i * a, eps, a);
        }
    }
  }
  const double c = p.lr / static_cast<double>(B);
  for (std::ptrdiff_t i = 0; i < d; ++i) {
    double* u = U + i * a;
    double* v = V + i * b;
    for (std::ptrdiff_t s = 0; s < B; ++s) {
      const std::uint64_t* mask = masks + s * words;
      if (connect) {
        axpy(u, -c * H[i + s * d], E + s * a, a);
        expand_mask(mx, XS + s * b, mask + i * wb, b);
        axpy(v, -c * G[i + s * d], mx, b);
      } else if (test_bit(mask, i)) {
        axpy(u, -c * H[i + s * d], E + s * a, a);
        axpy(v, -c * G[i + s * d], xcols[s], b);
      }
    }
  }
  return true;
}

void unit_pass_entry(const UnitPass& p) { unit_pass_body(p); }
void connect_pass_entry(const ConnectPass& p) { connect_pass_body(p); }
bool batch_step_entry(const BatchPass& p) { return batch_step_body(p); }

}  // namespace

KernelSet STRUCTDROP_KERNEL_SET_FUNCTION() { return KernelSet{unit_pass_entry, connect_pass_entry, batch_step_entry}; }

}  // namespace structdrop::sgd_kernels
