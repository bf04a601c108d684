// Bit sets of the masked-SGD engine: a mask is a run of 64-bit words, bit i of the set being bit
// (i mod 64) of word i / 64. Pure C++: no Python types.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "portable.hpp"

namespace structdrop::sgd_detail {

using Bits = std::vector<std::uint64_t>;

inline std::ptrdiff_t words_for(std::ptrdiff_t bits) { return (bits + 63) / 64; }

inline bool test_bit(const std::uint64_t* bits, std::ptrdiff_t i) { return (bits[i >> 6] >> (i & 63)) & 1u; }

// bits [lo, hi) := 1
inline void set_range(std::uint64_t* bits, std::ptrdiff_t lo, std::ptrdiff_t hi) {
  for (std::ptrdiff_t i = lo; i < hi;) {
    const std::ptrdiff_t word = i >> 6, offset = i & 63, count = std::min<std::ptrdiff_t>(64 - offset, hi - i);
    const std::uint64_t ones = count == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << count) - 1);
    bits[word] |= ones << offset;
    i += count;
  }
}

// bits [lo, hi) := 0
inline void clear_range(std::uint64_t* bits, std::ptrdiff_t lo, std::ptrdiff_t hi) {
  for (std::ptrdiff_t i = lo; i < hi;) {
    const std::ptrdiff_t word = i >> 6, offset = i & 63, count = std::min<std::ptrdiff_t>(64 - offset, hi - i);
    const std::uint64_t ones = count == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << count) - 1);
    bits[word] &= ~(ones << offset);
    i += count;
  }
}

// Calls f(i) for every set bit i, in increasing order.
template <class F>
inline void for_each_bit(const std::uint64_t* bits, std::ptrdiff_t words, F&& f) {
  for (std::ptrdiff_t w = 0; w < words; ++w) {
    std::uint64_t word = bits[w];
    while (word != 0) {
      const int offset = portable::ctz64(word);
      word &= word - 1;
      f((w << 6) + offset);
    }
  }
}

}  // namespace structdrop::sgd_detail
