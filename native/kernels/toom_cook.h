// One-dimensional Winograd / Toom-Cook transforms F(m, r) (Lavin & Gray 2016, eq. 6) for the
// kernels with larger tiles: F(4, r) and F(6, r) along a line (winograd_line.cpp), and the
// kernel transform G of F(6x6, 3x3) (winograd_f6.cpp, whose 8-point data transforms are these
// matrices written out with constant coefficients). winograd.cpp keeps its hand-written
// F(4x4, 3x3), which also serves the gradients.
//
// m outputs of a correlation with r taps come from alpha = m + r - 1 inputs d as
// y = A^T [(G g) . (B^T d)]: evaluate the kernel and the input at alpha - 1 points and at
// infinity, multiply, interpolate the product back. The points are 0, 1, -1, 2, -2, 1/2, -1/2,
// 1/4, -1/4, 4, -4, the first alpha - 1 of them: small points keep float32 rounding near that of
// F(4x4, 3x3) (F(6, 7) over 192 channels: ~4e-5 of the largest output; F(6x6, 3x3) ~2e-5).
//
// Besides 0 and infinity the points come in pairs +-p, which halves the transforms' work: B^T's
// rows for p and -p share their even-power coefficients and negate their odd ones, and A^T's
// columns for p and -p agree in even rows and negate in odd ones (Lavin & Gray section 5 use the
// same symmetry by hand for F(4, 3)).
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>
#include <vector>

#include "panel_gemm.h"

namespace toom_cook {

// A^T [m, alpha], G [alpha, r] and B^T [alpha, alpha] of F(m, r); rows of B^T and G and columns
// of A^T in the order of the points: 0, the pairs p, -p, infinity.
struct Transform {
  int64_t m, r, alpha;
  std::vector<float> at, g, bt;
  // B^T by pairs, alpha / 2 coefficients per row: `even` holds the coefficients of d_0, d_2, ...
  // for point 0 then for each pair, `odd` those of d_1, d_3, ... for each pair then for infinity.
  // B^T d at p and -p is even . d_even + odd . d_odd and even . d_even - odd . d_odd.
  std::vector<float> even, odd;
  std::vector<float> powers;  // [pairs, m]: p^i, A^T's column for p; (-p)^i is -p's
  int64_t pairs() const { return (alpha - 2) / 2; }
};

// Coefficients (constant term first) of the monic polynomial with these roots.
inline std::vector<double> polynomial_from_roots(const std::vector<double>& roots) {
  std::vector<double> c{1.0};
  for (double root : roots) {
    std::vector<double> next(c.size() + 1, 0.0);
    for (size_t i = 0; i < c.size(); i++) {
      next[i + 1] += c[i];
      next[i] -= root * c[i];
    }
    c = next;
  }
  return c;
}

// Fills even, odd and powers from bt and at, checking the pair structure: it holds exactly,
// every point and every coefficient being a dyadic rational.
inline void split_pairs(Transform& t) {
  const int64_t alpha = t.alpha, half = alpha / 2, pairs = t.pairs();
  t.even.assign(half * half, 0.0f);
  t.odd.assign(half * half, 0.0f);
  t.powers.assign(pairs * t.m, 0.0f);
  const float* at_infinity = &t.bt[(alpha - 1) * alpha];
  for (int64_t k = 0; k < alpha; k++) {
    TORCH_CHECK(k % 2 == 0 || t.bt[k] == 0.0f, "toom_cook: B^T's row at 0 is not even");
    TORCH_CHECK(k % 2 == 1 || at_infinity[k] == 0.0f,
                "toom_cook: B^T's row at infinity is not odd");
    if (k % 2 == 0) t.even[k / 2] = t.bt[k];
    if (k % 2 == 1) t.odd[pairs * half + k / 2] = at_infinity[k];
  }
  for (int64_t q = 0; q < pairs; q++) {
    const float* plus = &t.bt[(2 * q + 1) * alpha];
    const float* minus = &t.bt[(2 * q + 2) * alpha];
    for (int64_t k = 0; k < alpha; k++) {
      TORCH_CHECK(minus[k] == (k % 2 == 0 ? plus[k] : -plus[k]),
                  "toom_cook: B^T's rows at +-p are not paired");
      (k % 2 == 0 ? t.even[(q + 1) * half + k / 2] : t.odd[q * half + k / 2]) = plus[k];
    }
    for (int64_t i = 0; i < t.m; i++) t.powers[q * t.m + i] = t.at[i * alpha + 2 * q + 1];
  }
}

inline Transform make_transform(int64_t m, int64_t r) {
  static const double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.25, -0.25, 4.0, -4.0};
  const int64_t alpha = m + r - 1;
  TORCH_CHECK(alpha % 2 == 0 && alpha - 1 <= int64_t(sizeof(kPoints) / sizeof(double)),
              "toom_cook: F(", m, ", ", r, ") is not supported");
  const std::vector<double> p(kPoints, kPoints + alpha - 1);
  Transform t{m, r, alpha, std::vector<float>(m * alpha, 0.0f),
              std::vector<float>(alpha * r, 0.0f), std::vector<float>(alpha * alpha, 0.0f),
              {}, {}, {}};
  for (int64_t j = 0; j < alpha - 1; j++) {
    std::vector<double> others;
    double scale = 1.0;  // prod over the other points of (p_j - p_l)
    for (int64_t l = 0; l < alpha - 1; l++) {
      if (l == j) continue;
      others.push_back(p[l]);
      scale *= p[j] - p[l];
    }
    double power = 1.0;
    for (int64_t i = 0; i < m; i++, power *= p[j]) t.at[i * alpha + j] = float(power);
    power = 1.0;
    for (int64_t k = 0; k < r; k++, power *= p[j]) t.g[j * r + k] = float(power / scale);
    const std::vector<double> row = polynomial_from_roots(others);
    for (size_t k = 0; k < row.size(); k++) t.bt[j * alpha + k] = float(row[k]);
  }
  t.at[(m - 1) * alpha + alpha - 1] = 1.0f;  // infinity: the product's leading coefficient
  t.g[(alpha - 1) * r + r - 1] = 1.0f;
  const std::vector<double> last = polynomial_from_roots(p);
  for (int64_t k = 0; k < alpha; k++) t.bt[(alpha - 1) * alpha + k] = float(last[k]);
  split_pairs(t);
  return t;
}

// F(m, r) for m = 4, 6 and r = 3, 5, 7, built once.
inline const Transform& transform(int64_t m, int64_t r) {
  static const Transform f43 = make_transform(4, 3), f45 = make_transform(4, 5),
                         f47 = make_transform(4, 7), f63 = make_transform(6, 3),
                         f65 = make_transform(6, 5), f67 = make_transform(6, 7);
  if (m == 4) return r == 3 ? f43 : r == 5 ? f45 : f47;
  return r == 3 ? f63 : r == 5 ? f65 : f67;
}

#if DD_X86

// v = B^T d for A values d (eight channels each), by pairs.
template <int A>
DD_AVX2_INLINE void input_points(const __m256* d, const Transform& t, __m256* v) {
  constexpr int kHalf = A / 2, kPairs = (A - 2) / 2;
  const float *even = t.even.data(), *odd = t.odd.data();
  __m256 sum = _mm256_setzero_ps();
  for (int k = 0; k < kHalf; k++) sum = _mm256_fmadd_ps(_mm256_set1_ps(even[k]), d[2 * k], sum);
  v[0] = sum;
  for (int q = 0; q < kPairs; q++) {
    __m256 e = _mm256_setzero_ps(), o = _mm256_setzero_ps();
    for (int k = 0; k < kHalf; k++) {
      e = _mm256_fmadd_ps(_mm256_set1_ps(even[(q + 1) * kHalf + k]), d[2 * k], e);
      o = _mm256_fmadd_ps(_mm256_set1_ps(odd[q * kHalf + k]), d[2 * k + 1], o);
    }
    v[2 * q + 1] = _mm256_add_ps(e, o);
    v[2 * q + 2] = _mm256_sub_ps(e, o);
  }
  sum = _mm256_setzero_ps();
  for (int k = 0; k < kHalf; k++) {
    sum = _mm256_fmadd_ps(_mm256_set1_ps(odd[kPairs * kHalf + k]), d[2 * k + 1], sum);
  }
  v[A - 1] = sum;
}

// y = A^T v for A values v: the pair (p, -p) adds p^i (v_p + v_-p) to even outputs i and
// p^i (v_p - v_-p) to odd ones; point 0 reaches only output 0, infinity only output M - 1.
template <int A, int M>
DD_AVX2_INLINE void output_points(const __m256* v, const Transform& t, __m256* y) {
  constexpr int kPairs = (A - 2) / 2;
  const float* powers = t.powers.data();
  for (int q = 0; q < M; q++) y[q] = _mm256_setzero_ps();
  y[0] = v[0];
  y[M - 1] = v[A - 1];
  for (int p = 0; p < kPairs; p++) {
    const __m256 sum = _mm256_add_ps(v[2 * p + 1], v[2 * p + 2]);
    const __m256 diff = _mm256_sub_ps(v[2 * p + 1], v[2 * p + 2]);
    for (int q = 0; q < M; q++) {
      y[q] = _mm256_fmadd_ps(_mm256_set1_ps(powers[p * M + q]), q % 2 ? diff : sum, y[q]);
    }
  }
}

// u = G g for the r kernel values g[0], g[stride], ... : alpha values.
DD_AVX2_INLINE void kernel_points(const __m256* g, int64_t stride, const Transform& t,
                                  __m256* u) {
  for (int64_t j = 0; j < t.alpha; j++) {
    __m256 sum = _mm256_setzero_ps();
    for (int64_t k = 0; k < t.r; k++) {
      sum = _mm256_fmadd_ps(_mm256_set1_ps(t.g[j * t.r + k]), g[k * stride], sum);
    }
    u[j] = sum;
  }
}

#endif

}  // namespace toom_cook
