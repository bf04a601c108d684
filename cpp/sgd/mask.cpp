// Mask sampling and the loss of one mask: see mask.hpp.
#include "sgd/mask.hpp"

#include <algorithm>
#include <cstddef>

namespace structdrop::sgd_detail {

Sampler::Sampler(const SchemeStats& stats, std::ptrdiff_t b_) : kind(stats.params.kind), d(stats.width), b(b_) {
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
    for (std::ptrdiff_t i = 0; i < d; ++i) scale[i] = kind == SchemeKind::none ? 1.0 : 1.0 / stats.mean[i];
  }
}

namespace {

// Bernoulli lanes [0, lanes) into out (words_for(lanes) words; bits past `lanes` cleared).
void bernoulli_lanes(rng::Stream& stream, const rng::BernoulliBits& q, std::ptrdiff_t lanes, std::uint64_t* out) {
  const std::ptrdiff_t w = words_for(lanes);
  for (std::ptrdiff_t k = 0; k < w; ++k) out[k] = rng::bernoulli64(stream, q);
  if (lanes & 63) out[w - 1] &= (std::uint64_t{1} << (lanes & 63)) - 1;
}

}  // namespace

void Sampler::draw(rng::Stream& stream, std::uint64_t* out, std::vector<std::uint64_t>& scratch) const {
  std::fill(out, out + words, std::uint64_t{0});
  switch (kind) {
    case SchemeKind::none:
      set_range(out, 0, d);
      break;
    case SchemeKind::dropout:
      bernoulli_lanes(stream, p, d, out);
      break;
    case SchemeKind::dropconnect:
      for (std::ptrdiff_t i = 0; i < d; ++i) bernoulli_lanes(stream, p, b, out + i * wb);
      break;
    case SchemeKind::dropblock: {
      const std::ptrdiff_t k = d / r;
      scratch.assign(static_cast<std::size_t>(words_for(k)), 0);
      bernoulli_lanes(stream, p, k, scratch.data());
      for_each_bit(scratch.data(), words_for(k),
                   [&](std::ptrdiff_t block) { set_range(out, block * r, block * r + r); });
      break;
    }
    case SchemeKind::overlapping_dropblock: {
      const std::ptrdiff_t seeds = d - r + 1;
      scratch.assign(static_cast<std::size_t>(words_for(seeds)), 0);
      bernoulli_lanes(stream, p, seeds, scratch.data());
      set_range(out, 0, d);
      for_each_bit(scratch.data(), words_for(seeds), [&](std::ptrdiff_t seed) { clear_range(out, seed, seed + r); });
      break;
    }
  }
}

void Sampler::bytes_to_bits(const std::uint8_t* bytes, std::uint64_t* out) const {
  const std::ptrdiff_t n = entries();
  for (std::ptrdiff_t e = 0; e < n; ++e)
    if (bytes[e] != 0) {
      const std::ptrdiff_t i = bit_of(e);
      out[i >> 6] |= std::uint64_t{1} << (i & 63);
    }
}

long long draw_index(std::uint64_t seed, long long step, std::ptrdiff_t slot, std::ptrdiff_t N) {
  rng::Stream stream(seed, static_cast<std::uint64_t>(step), static_cast<std::uint32_t>(slot),
                     rng::Purpose::data_index);
  return static_cast<long long>(rng::bounded_index(stream.next(), static_cast<std::uint64_t>(N)));
}

void draw_mask(const Sampler& sampler, std::uint64_t seed, long long step, std::ptrdiff_t slot, std::uint64_t* out,
               std::vector<std::uint64_t>& scratch) {
  rng::Stream stream(seed, static_cast<std::uint64_t>(step), static_cast<std::uint32_t>(slot), rng::Purpose::mask);
  sampler.draw(stream, out, scratch);
}

namespace {

// ||Y - M X||^2 = ||Y||^2 - 2 <M, Y X^T> + <M X X^T, M>.
double loss_of_product(const DataMoments& moments, const Matrix& M) {
  const double cross = M.cwiseProduct(moments.cross).sum();
  const double quad = (M * moments.gram).cwiseProduct(M).sum();
  return moments.y_sq_norm - 2.0 * cross + quad;
}

}  // namespace

double stochastic_loss_bits(const Sampler& sampler, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V,
                            const std::uint64_t* mask) {
  const std::ptrdiff_t a = U.rows(), b = V.rows(), d = U.cols();
  Matrix M;
  if (sampler.kind == SchemeKind::dropconnect) {
    Matrix W(b, d);
    for (std::ptrdiff_t i = 0; i < d; ++i)
      for (std::ptrdiff_t j = 0; j < b; ++j)
        W(j, i) = test_bit(mask + i * sampler.wb, j) ? V(j, i) * sampler.inv_theta : 0.0;
    M.noalias() = U * W.transpose();
  } else {
    std::ptrdiff_t kept = 0;
    for_each_bit(mask, sampler.words, [&](std::ptrdiff_t) { ++kept; });
    Matrix Uk(a, kept), Vk(b, kept);
    std::ptrdiff_t c = 0;
    for_each_bit(mask, sampler.words, [&](std::ptrdiff_t i) {
      Uk.col(c) = U.col(i) * sampler.scale[i];
      Vk.col(c) = V.col(i);
      ++c;
    });
    M.noalias() = Uk * Vk.transpose();
  }
  return loss_of_product(moments, M);
}

}  // namespace structdrop::sgd_detail
