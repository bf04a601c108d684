// Mask sampling of the masked-SGD engine: which units (or, for DropConnect, which entries of V)
// one minibatch slot of one step keeps, drawn from the counter-based stream of random.hpp, so a
// mask is a pure function of (seed, step, slot). Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "objectives.hpp"
#include "random.hpp"
#include "sgd/bits.hpp"

namespace structdrop::sgd_detail {

// Mask layouts. Unit schemes: d bits, bit i = unit i kept. DropConnect: column i of the b x d mask
// occupies words [i wb, (i+1) wb) with wb = ceil(b / 64); entry (j, i) is bit j of that range.
struct Sampler {
  SchemeKind kind = SchemeKind::none;
  std::ptrdiff_t d = 0, b = 0, r = 1;
  std::ptrdiff_t wb = 0;      // dropconnect: words per column
  std::ptrdiff_t words = 0;   // words of one mask
  rng::BernoulliBits p;       // per unit, per block, per seed or per entry
  std::vector<double> scale;  // unit schemes: 1 / mu_i
  double inv_theta = 1.0;     // dropconnect

  Sampler(const SchemeStats& stats, std::ptrdiff_t b_);

  std::ptrdiff_t entries() const { return kind == SchemeKind::dropconnect ? b * d : d; }

  // Position in the bit layout of entry e of the byte layout (unit i; or (j, i) at e = i b + j).
  std::ptrdiff_t bit_of(std::ptrdiff_t e) const {
    return kind == SchemeKind::dropconnect ? (e / b) * wb * 64 + e % b : e;
  }

  // The mask of one slot (`words` words; scratch is reused between calls).
  void draw(rng::Stream& stream, std::uint64_t* out, std::vector<std::uint64_t>& scratch) const;

  // The byte layout of draw_slot (0/1 per entry) into the bit layout (out zeroed by the caller).
  void bytes_to_bits(const std::uint8_t* bytes, std::uint64_t* out) const;
};

// The training sample of (step, slot): uniform on [0, N), with replacement.
long long draw_index(std::uint64_t seed, long long step, std::ptrdiff_t slot, std::ptrdiff_t N);

// The mask of (step, slot).
void draw_mask(const Sampler& sampler, std::uint64_t seed, long long step, std::ptrdiff_t slot, std::uint64_t* out,
               std::vector<std::uint64_t>& scratch);

// ||Y - U D V^T X||_F^2 over all the data for one mask (bit layout), from the moments.
double stochastic_loss_bits(const Sampler& sampler, const DataMoments& moments, const MatrixRef& U, const MatrixRef& V,
                            const std::uint64_t* mask);

}  // namespace structdrop::sgd_detail
