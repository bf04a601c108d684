// The few operations plain C++17 lacks, each with a GCC/Clang, an MSVC and an ISO C++17 route:
// the high 64 bits of a 64 x 64-bit product, count trailing zeros, a prefetch hint, and whether
// the CPU (and the operating system) offers AVX2 and AVX-512.
//
// With STRUCTDROP_PORTABLE=1 (the CMake option STRUCTDROP_PORTABLE=ON) only the ISO routes are
// compiled: no __int128, no builtins, no intrinsics; the CPU is then reported as having neither
// AVX2 nor AVX-512, so only the baseline kernels run. Every route returns the same integers, so
// results do not depend on the route (the random stream is integer arithmetic only).
//
// Pure C++: no Python types.
#pragma once

#include <cstdint>

#ifndef STRUCTDROP_PORTABLE
#define STRUCTDROP_PORTABLE 0
#endif

#if !STRUCTDROP_PORTABLE && defined(_MSC_VER) && !defined(__clang__)
#define STRUCTDROP_MSVC 1
#include <intrin.h>
#else
#define STRUCTDROP_MSVC 0
#endif

#if !STRUCTDROP_PORTABLE && (defined(__GNUC__) || defined(__clang__))
#define STRUCTDROP_GNU 1
#else
#define STRUCTDROP_GNU 0
#endif

// x86-64 as a target of run-time instruction-set dispatch (not in the portable build).
#if !STRUCTDROP_PORTABLE && (defined(__x86_64__) || defined(_M_X64)) && !defined(_M_ARM64EC)
#define STRUCTDROP_X86_64 1
#else
#define STRUCTDROP_X86_64 0
#endif

// Linkage of the functions below: inline (one copy for the program), or static inline where a
// translation unit compiled for one instruction set (sgd/kernels_*.cpp) defines
// STRUCTDROP_PORTABLE_PRIVATE first: its copies then stay its own, never shared by the linker.
#if defined(STRUCTDROP_PORTABLE_PRIVATE)
#define STRUCTDROP_PORTABLE_FN static inline
#else
#define STRUCTDROP_PORTABLE_FN inline
#endif

namespace structdrop::portable {

// floor(a b / 2^64).
STRUCTDROP_PORTABLE_FN std::uint64_t mulhi64(std::uint64_t a, std::uint64_t b) {
#if STRUCTDROP_GNU && defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 u128;
  return static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64);
#elif STRUCTDROP_MSVC && (defined(_M_X64) || defined(_M_ARM64))
  return __umulh(a, b);
#else
  // Schoolbook on 32-bit halves: a b = ah bh 2^64 + (ah bl + al bh) 2^32 + al bl, with the carry
  // of the middle terms into the high word tracked exactly.
  const std::uint64_t al = a & 0xFFFFFFFFu, ah = a >> 32, bl = b & 0xFFFFFFFFu, bh = b >> 32;
  const std::uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const std::uint64_t middle = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);  // < 3 2^32
  return hh + (lh >> 32) + (hl >> 32) + (middle >> 32);
#endif
}

// (a b) mod 2^64 (unsigned arithmetic wraps: the same everywhere).
STRUCTDROP_PORTABLE_FN std::uint64_t mullo64(std::uint64_t a, std::uint64_t b) { return a * b; }

// The index of the lowest set bit of x; x must not be 0.
STRUCTDROP_PORTABLE_FN int ctz64(std::uint64_t x) {
#if STRUCTDROP_GNU
  return __builtin_ctzll(x);
#elif STRUCTDROP_MSVC && (defined(_M_X64) || defined(_M_ARM64))
  unsigned long index = 0;
  _BitScanForward64(&index, x);
  return static_cast<int>(index);
#else
  // De Bruijn multiplication: (x & -x) is 2^k, and the top six bits of 2^k times the De Bruijn
  // sequence B(2, 6) are distinct for the 64 values of k.
  constexpr std::uint64_t debruijn = 0x03F79D71B4CB0A89u;
  constexpr unsigned char table[64] = {0,  1,  48, 2,  57, 49, 28, 3,  61, 58, 50, 42, 38, 29, 17, 4,
                                       62, 55, 59, 36, 53, 51, 43, 22, 45, 39, 33, 30, 24, 18, 12, 5,
                                       63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23, 11,
                                       46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9,  13, 8,  7,  6};
  return table[((x & (~x + 1)) * debruijn) >> 58];
#endif
}

// A hint to bring the cache line holding p closer (no effect on results).
STRUCTDROP_PORTABLE_FN void prefetch(const void* p) {
#if STRUCTDROP_GNU
  __builtin_prefetch(p);
#elif STRUCTDROP_MSVC && (defined(_M_X64) || defined(_M_IX86))
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
#else
  (void)p;
#endif
}

// What the CPU and the operating system offer (the OS must save the wider registers: XGETBV).
struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;  // AVX-512 F, VL, BW and DQ (every CPU with VL has BW and DQ)
};

STRUCTDROP_PORTABLE_FN CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if STRUCTDROP_X86_64 && STRUCTDROP_GNU
  // libgcc / compiler-rt check the CPUID bits and the OS's XCR0 state.
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#elif STRUCTDROP_X86_64 && STRUCTDROP_MSVC
  int r[4] = {0, 0, 0, 0};
  __cpuid(r, 0);
  const int max_leaf = r[0];
  if (max_leaf < 7) return f;
  __cpuid(r, 1);
  const bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = _xgetbv(0);
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  __cpuidex(r, 7, 0);
  const unsigned ebx = static_cast<unsigned>(r[1]);
  f.avx2 = ymm_state && ((ebx >> 5) & 1u);
  f.avx512 = f.avx2 && zmm_state && ((ebx >> 16) & 1u) /* F */ && ((ebx >> 17) & 1u) /* DQ */ &&
             ((ebx >> 30) & 1u) /* BW */ && ((ebx >> 31) & 1u) /* VL */;
#endif
  return f;
}

}  // namespace structdrop::portable
