// Counter-based random numbers for the masked-SGD engine: Philox4x32-10 (Salmon, Moraes, Dror,
// Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011), checked against the Random123
// known-answer vectors in the tests.
//
// Every random word is a pure function of (seed, step, sample, purpose, word index): no state is
// carried from one step to the next, so a run gives the same stream on any machine, in any thread,
// whatever else shares the call, and the masks of step t can be drawn before, after or without
// steps 1..t-1. Only integer arithmetic: bit-identical everywhere.
//
// Layout of the 128-bit Philox counter (c0, c1, c2, c3) and 64-bit key (k0, k1):
//   k0, k1 = low and high 32 bits of the seed,
//   c0     = index of the Philox block within the stream (two 64-bit words per block),
//   c1     = sample index within the minibatch,
//   c2     = low 32 bits of the step,
//   c3     = bits 32..55 of the step | purpose << 24   (steps < 2^56, purpose < 256).
// Pure C++: no Python types.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "portable.hpp"

namespace structdrop::rng {

using Block = std::array<std::uint32_t, 4>;
using Key = std::array<std::uint32_t, 2>;

// Philox4x32 with 10 rounds (the Random123 reference: bump the key between rounds).
inline Block philox4x32_10(Block ctr, Key key) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += W0;
      key[1] += W1;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(M0) * ctr[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(M1) * ctr[2];
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    ctr = Block{hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
  }
  return ctr;
}

// What a stream of words is used for (the top byte of c3).
enum class Purpose : std::uint32_t {
  data_index = 0,  // which training sample a step (or a minibatch slot) uses
  mask = 1,        // the dropout mask of that sample
};

// The words of one (seed, step, sample, purpose) stream, in order.
class Stream {
 public:
  Stream(std::uint64_t seed, std::uint64_t step, std::uint32_t sample, Purpose purpose)
      : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
        c1_(sample),
        c2_(static_cast<std::uint32_t>(step)),
        c3_((static_cast<std::uint32_t>(step >> 32) & 0x00FFFFFFu) | (static_cast<std::uint32_t>(purpose) << 24)) {}

  // The next 64-bit word: words 2j and 2j+1 are block j's (w0 | w1 << 32) and (w2 | w3 << 32).
  std::uint64_t next() {
    if (have_ == 0) {
      const Block out = philox4x32_10(Block{block_++, c1_, c2_, c3_}, key_);
      buffer_[0] = static_cast<std::uint64_t>(out[0]) | (static_cast<std::uint64_t>(out[1]) << 32);
      buffer_[1] = static_cast<std::uint64_t>(out[2]) | (static_cast<std::uint64_t>(out[3]) << 32);
      have_ = 2;
      return buffer_[0];
    }
    have_ = 0;
    return buffer_[1];
  }

 private:
  Key key_;
  std::uint32_t c1_, c2_, c3_;
  std::uint32_t block_ = 0;
  std::uint64_t buffer_[2] = {0, 0};
  int have_ = 0;
};

// floor(word * n / 2^64): an index in [0, n). Its distribution differs from uniform by at most
// n / 2^64 in each probability (< 1e-15 for n < 10^4), far below anything measurable.
inline std::uint64_t bounded_index(std::uint64_t word, std::uint64_t n) { return portable::mulhi64(word, n); }

// A retain probability prepared for bit-sliced Bernoulli sampling: 64 Bernoulli(p) lanes at once
// by comparing 64 uniform random binary fractions u = 0.R1 R2 R3 ... with p's binary expansion,
// one random word per bit level, until every lane is decided. Lane = 1 iff u < p_64 where
// p_64 = floor(p 2^64) / 2^64, so P(lane = 1) = p_64 (within 2^-64 of p). A level at which p's bit
// is 1 decides the lanes whose random bit is 0 (u < p); a 0 bit decides those whose random bit is
// 1 (u > p); lanes still undecided after p's last 1 bit have u >= p_64. Expected cost: about
// log2(64) + 2 words per 64 lanes in general, exactly one word when p = 1/2.
struct BernoulliBits {
  std::uint64_t bits = 0;  // floor(p 2^64) (unused when always)
  int levels = 0;          // number of bit levels up to and including p's last 1 bit
  bool always = true;      // p >= 1: every lane is 1, no words consumed

  BernoulliBits() = default;
  explicit BernoulliBits(double p) {
    if (!(p < 1.0)) return;  // always
    always = false;
    if (!(p > 0.0)) return;                                // never: bits = 0, levels = 0
    bits = static_cast<std::uint64_t>(std::ldexp(p, 64));  // p < 1 so p 2^64 < 2^64
    levels = bits == 0 ? 0 : 64 - portable::ctz64(bits);
  }
};

// 64 independent Bernoulli lanes (bit l of the result is lane l).
inline std::uint64_t bernoulli64(Stream& stream, const BernoulliBits& p) {
  if (p.always) return ~std::uint64_t{0};
  std::uint64_t undecided = ~std::uint64_t{0}, result = 0;
  for (int level = 0; level < p.levels && undecided != 0; ++level) {
    const std::uint64_t random = stream.next();
    if ((p.bits >> (63 - level)) & 1u) {
      result |= undecided & ~random;
      undecided &= random;
    } else {
      undecided &= ~random;
    }
  }
  return result;
}

}  // namespace structdrop::rng
