// A small single-core matrix product for the Winograd kernels: c (+)= a b with b stored as
// column panels. Shared by winograd.cpp (3x3) and winograd_line.cpp (1xk, kx1).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#if defined(__x86_64__)
#include <immintrin.h>
#define DD_X86 1
#define DD_AVX2 __attribute__((target("avx2,fma")))
#define DD_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
#else
#define DD_X86 0
#endif

namespace dd {

constexpr int64_t kLanes = 8;  // floats per AVX2 register

// This thread's scratch buffer of at least `floats` floats, kept between calls. A fresh
// multi-megabyte buffer per call page-faults on every first touch, and the faults of two threads
// serialise on the process's memory map: with one per call, two threads ran the Winograd
// kernels only 1.1-1.3x faster than one.
inline float* thread_scratch(size_t floats) {
  thread_local std::unique_ptr<float[]> buffer;
  thread_local size_t capacity = 0;
  if (floats > capacity) {
    buffer.reset(new float[floats]);
    capacity = floats;
  }
  return buffer.get();
}

// Right-hand matrices of the Winograd products ([rows, cols] per tile position) are stored as
// column panels of kPanel floats, each panel [rows, width] contiguous, so the GEMM kernel streams a
// panel from L1 instead of striding through rows. Columns are multiples of 8 (kLanes); the
// last panel of a matrix may be 8 wide.
constexpr int64_t kPanel = 16;

inline int64_t panel_width(int64_t cols, int64_t c) {
  return std::min(kPanel, cols - c / kPanel * kPanel);
}

constexpr int64_t kTileRows = 6;  // rows of a register tile of gemm_panels

// Rows per block of a blocked product: near `wanted`, within [18, 252], and a whole number of
// register tiles (a partial tile keeps fewer accumulators busy per load).
inline int64_t block_rows(int64_t wanted) {
  return std::max<int64_t>(18, std::min<int64_t>(252, wanted)) / kTileRows * kTileRows;
}

// Offset of element (r, c) of a [rows, cols] matrix in panel layout.
inline int64_t panel_offset(int64_t rows, int64_t cols, int64_t r, int64_t c) {
  return (c / kPanel) * kPanel * rows + r * panel_width(cols, c) + c % kPanel;
}

#if DD_X86

// c[R, W] (+)= a[R, k_len] b[k_len, W] with a(r, k) at a[r * a_row + k * a_k] and b one panel
// ([k_len, W] contiguous): 2 * R accumulators of 8 lanes stay in registers over the whole k loop.
template <int R, int W>
DD_AVX2 inline void gemm_tile(int64_t k_len, const float* a, int64_t a_row, int64_t a_k,
                              const float* b, float* c, int64_t ldc, bool accumulate) {
  constexpr int kVectors = W / 8;
  // GCC at -O2 keeps small arrays in registers only when their loops are fully unrolled.
  __m256 acc[R][kVectors];
#pragma GCC unroll 12
  for (int i = 0; i < R * kVectors; i++) acc[i / kVectors][i % kVectors] = _mm256_setzero_ps();
  // Unrolled: 84 -> 90 GFLOP/s of the ~100 peak of one core here (loop overhead per step).
#pragma GCC unroll 4
  for (int64_t k = 0; k < k_len; k++) {
    const __m256 b0 = _mm256_loadu_ps(b + k * W);
    const __m256 b1 = kVectors > 1 ? _mm256_loadu_ps(b + k * W + 8) : b0;
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
      const __m256 av = _mm256_broadcast_ss(a + r * a_row + k * a_k);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      if (kVectors > 1) acc[r][kVectors - 1] = _mm256_fmadd_ps(av, b1, acc[r][kVectors - 1]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < R * kVectors; i++) {
    const int r = i / kVectors, v = i % kVectors;
    float* dst = c + r * ldc + 8 * v;
    const __m256 sum = accumulate ? _mm256_add_ps(_mm256_loadu_ps(dst), acc[r][v]) : acc[r][v];
    _mm256_storeu_ps(dst, sum);
  }
}

template <int W>
DD_AVX2 inline void gemm_rows(int64_t rows, int64_t k_len, const float* a, int64_t a_row,
                              int64_t a_k, const float* b, float* c, int64_t ldc, bool accumulate) {
  switch (rows) {
    case 6: return gemm_tile<6, W>(k_len, a, a_row, a_k, b, c, ldc, accumulate);
    case 5: return gemm_tile<5, W>(k_len, a, a_row, a_k, b, c, ldc, accumulate);
    case 4: return gemm_tile<4, W>(k_len, a, a_row, a_k, b, c, ldc, accumulate);
    case 3: return gemm_tile<3, W>(k_len, a, a_row, a_k, b, c, ldc, accumulate);
    case 2: return gemm_tile<2, W>(k_len, a, a_row, a_k, b, c, ldc, accumulate);
    default: return gemm_tile<1, W>(k_len, a, a_row, a_k, b, c, ldc, accumulate);
  }
}

// Row-major c[m, n] (+)= a[m, k] b[k, n], b in panel layout, a(r, k) at a[r * a_row + k * a_k].
// The shapes are small (m a block of tiles or a channel count, k <= a few hundred): one core,
// no packing, each panel of b reused from L1 across all rows of a.
DD_AVX2 inline void gemm_panels(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row,
                                int64_t a_k, const float* b, float* c, int64_t ldc,
                                bool accumulate) {
  for (int64_t j = 0; j < n; j += kPanel) {
    const float* panel = b + j * k;
    const bool wide = n - j >= kPanel;
    for (int64_t i = 0; i < m; i += kTileRows) {
      const int64_t rows = std::min(kTileRows, m - i);
      const float* ai = a + i * a_row;
      float* ci = c + i * ldc + j;
      if (wide) {
        gemm_rows<16>(rows, k, ai, a_row, a_k, panel, ci, ldc, accumulate);
      } else {
        gemm_rows<8>(rows, k, ai, a_row, a_k, panel, ci, ldc, accumulate);
      }
    }
  }
}

inline bool cpu_supported() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

#else

inline bool cpu_supported() { return false; }
inline void gemm_panels(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*,
                        float*, int64_t, bool) {}

#endif

}  // namespace dd
