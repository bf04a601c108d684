// The engine's pieces exposed for tests and tools (sgd.hpp): one slot's draws, one step with given
// masks, the loss of one given mask. Each makes exactly the computation the training loop makes.
#include "sgd.hpp"
#include "sgd/batch.hpp"
#include "sgd/kernels.hpp"
#include "sgd/mask.hpp"

namespace structdrop {

using sgd_detail::Bits;
using sgd_detail::Sampler;

void draw_slot(const SchemeStats& stats, std::ptrdiff_t b, std::ptrdiff_t N, std::uint64_t seed, long long step,
               std::ptrdiff_t slot, long long* index, std::uint8_t* mask) {
  const Sampler sampler(stats, b);
  Bits bits(static_cast<std::size_t>(sampler.words));
  std::vector<std::uint64_t> scratch;
  *index = sgd_detail::draw_index(seed, step, slot, N);
  sgd_detail::draw_mask(sampler, seed, step, slot, bits.data(), scratch);
  const std::ptrdiff_t n = sampler.entries();
  for (std::ptrdiff_t e = 0; e < n; ++e) mask[e] = sgd_detail::test_bit(bits.data(), sampler.bit_of(e)) ? 1 : 0;
}

void masked_sgd_step(const SchemeStats& stats, Matrix& U, Matrix& V, const MatrixRef& Xb, const MatrixRef& Yb,
                     const std::uint8_t* masks, double lr) {
  const std::ptrdiff_t b = V.rows(), B = Xb.cols();
  const Sampler sampler(stats, b);
  const std::ptrdiff_t n = sampler.entries();
  sgd_detail::BatchWork work;
  work.resize(sampler, U.rows(), b, B);
  for (std::ptrdiff_t s = 0; s < B; ++s) {
    work.x[s] = Xb.col(s).data();
    work.y[s] = Yb.col(s).data();
    sampler.bytes_to_bits(masks + s * n, work.mask(sampler, s));
  }
  if (!work.step(sgd_kernels::active_kernels(), sampler, U, V, lr))
    throw TrainingDiverged(1, "the error is not finite");
}

double stochastic_loss(const SchemeStats& stats, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V,
                       const std::uint8_t* mask) {
  const Sampler sampler(stats, V.rows());
  Bits bits(static_cast<std::size_t>(sampler.words), 0);
  sampler.bytes_to_bits(mask, bits.data());
  return sgd_detail::stochastic_loss_bits(sampler, moments, U, V, bits.data());
}

}  // namespace structdrop
