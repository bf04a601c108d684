// The buffers of one minibatch step (any scheme), and their view for the kernels.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "objectives.hpp"
#include "sgd/kernels.hpp"
#include "sgd/mask.hpp"

namespace structdrop::sgd_detail {

struct BatchWork {
  std::ptrdiff_t B = 0;
  std::vector<const double*> x, y;  // the B samples
  Bits masks;                       // B masks of sampler.words words
  Matrix H, G, E;                   // h (d x B), g (d x B), eps (a x B)
  std::vector<double> xs, mx;       // dropconnect: x / theta, and the masked x of one column

  void resize(const Sampler& sampler, std::ptrdiff_t a, std::ptrdiff_t b, std::ptrdiff_t batch) {
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
  std::uint64_t* mask(const Sampler& sampler, std::ptrdiff_t s) { return masks.data() + s * sampler.words; }

  // One step on U (a x d), V (b x d) with step size lr; false when an error is not finite.
  bool step(const sgd_kernels::KernelSet& kernels, const Sampler& sampler, Matrix& U, Matrix& V, double lr) {
    const sgd_kernels::BatchPass pass{static_cast<std::ptrdiff_t>(U.rows()),
                                      static_cast<std::ptrdiff_t>(V.rows()),
                                      static_cast<std::ptrdiff_t>(U.cols()),
                                      B,
                                      sampler.words,
                                      sampler.wb,
                                      sampler.kind == SchemeKind::dropconnect,
                                      sampler.inv_theta,
                                      sampler.scale.data(),
                                      x.data(),
                                      y.data(),
                                      masks.data(),
                                      H.data(),
                                      G.data(),
                                      E.data(),
                                      xs.data(),
                                      mx.data(),
                                      U.data(),
                                      V.data(),
                                      lr};
    return kernels.batch_step(pass);
  }
};

}  // namespace structdrop::sgd_detail
