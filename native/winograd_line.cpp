// Winograd F(m, r) along one axis for 1xk and kx1 convolutions (k = 3, 5, 7), CPU float32,
// channels_last, forward only (inference: FID's Inception spends a quarter of its FLOPs in 1x7
// and 7x1 convolutions).
//
// m outputs along the kernel's axis come from m + r - 1 inputs as y = A^T [(G g) . (B^T d)]
// (Lavin & Gray 2016, eq. 6, for F(m, r) in one dimension): m + r - 1 products per m outputs
// instead of m r, summed over input channels as m + r - 1 matrix products [tiles, Cin] x
// [Cin, Cout]. The matrices come from the Toom-Cook construction on the points 0, 1, -1, 2, -2,
// 1/2, -1/2, 1/4, -1/4, 4, -4 and infinity, the first m + r - 2 finite ones: small points keep
// float32 rounding near that of the 3x3 kernels (F(4, 7) and F(6, 7) over 192 channels: at most
// ~4e-5 of the largest output). m is 4 or 6, whichever needs fewer products for the line
// length: Inception's 17-long lines take three F(6, 7) tiles (36 products) rather than four
// F(4, 7) tiles and one direct output (47).
//
// The points come in pairs +-p besides 0 and infinity, which halves the transforms' work: B^T's
// rows for p and -p share their even-power coefficients and negate their odd ones, and A^T's
// columns for p and -p agree in even rows and negate in odd ones (Lavin & Gray section 5 do the
// same by hand for F(4, 3)).
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "panel_gemm.h"
#include "winograd.h"

namespace winograd {
namespace {

using dd::gemm_panels;
using dd::kLanes;
using dd::panel_offset;

// A^T [m, alpha], G [alpha, r] and B^T [alpha, alpha] of F(m, r), alpha = m + r - 1; the rows
// of B^T and columns of A^T in the order of the points (0, then pairs p, -p, then infinity).
struct LineTransform {
  int64_t m, r, alpha;
  std::vector<float> at, g, bt;
  // B^T split by the pairs, alpha / 2 coefficients per row: `even` rows are point 0 then each
  // pair's coefficients of d_0, d_2, ...; `odd` rows are each pair's coefficients of d_1, d_3,
  // ... then infinity's. B^T d for the pair (p, -p) is even . d_even +- odd . d_odd.
  std::vector<float> even, odd;
  // [pairs, m]: p^i, A^T's column for p (the column for -p is (-p)^i).
  std::vector<float> powers;
};

// Coefficients (constant term first) of the monic polynomial with these roots.
std::vector<double> polynomial_from_roots(const std::vector<double>& roots) {
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

// The pair structure of B^T (see LineTransform::even/odd), checked: it holds exactly because
// every point and every coefficient is a dyadic rational.
void split_pairs(LineTransform& t) {
  const int64_t alpha = t.alpha, half = alpha / 2, pairs = (alpha - 2) / 2;
  t.even.assign(half * half, 0.0f);
  t.odd.assign(half * half, 0.0f);
  t.powers.assign(pairs * t.m, 0.0f);
  for (int64_t k = 0; k < alpha; k++) {
    TORCH_CHECK(k % 2 == 0 || t.bt[k] == 0.0f, "winograd: B^T's row at 0 is not even");
    TORCH_CHECK(k % 2 == 1 || t.bt[(alpha - 1) * alpha + k] == 0.0f,
                "winograd: B^T's row at infinity is not odd");
    if (k % 2 == 0) t.even[k / 2] = t.bt[k];
    if (k % 2 == 1) t.odd[pairs * half + k / 2] = t.bt[(alpha - 1) * alpha + k];
  }
  for (int64_t q = 0; q < pairs; q++) {
    const float* plus = &t.bt[(2 * q + 1) * alpha];
    const float* minus = &t.bt[(2 * q + 2) * alpha];
    for (int64_t k = 0; k < alpha; k++) {
      TORCH_CHECK(minus[k] == (k % 2 == 0 ? plus[k] : -plus[k]),
                  "winograd: B^T's rows at +-p are not paired");
      (k % 2 == 0 ? t.even[(q + 1) * half + k / 2] : t.odd[q * half + k / 2]) = plus[k];
    }
    for (int64_t i = 0; i < t.m; i++) t.powers[q * t.m + i] = t.at[i * alpha + 2 * q + 1];
  }
}

// Toom-Cook: evaluate the kernel and the input at the points (G, B^T), multiply, interpolate
// the product back (A^T); the point at infinity supplies the leading coefficient.
LineTransform make_line_transform(int64_t m, int64_t r) {
  static const double kPoints[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.25, -0.25, 4.0, -4.0};
  const int64_t alpha = m + r - 1;
  const std::vector<double> p(kPoints, kPoints + alpha - 1);
  LineTransform t{m, r, alpha, std::vector<float>(m * alpha, 0.0f),
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
  t.at[(m - 1) * alpha + alpha - 1] = 1.0f;
  t.g[(alpha - 1) * r + r - 1] = 1.0f;
  const std::vector<double> last = polynomial_from_roots(p);
  for (int64_t k = 0; k < alpha; k++) t.bt[(alpha - 1) * alpha + k] = float(last[k]);
  split_pairs(t);
  return t;
}

const LineTransform& line_transform(int64_t m, int64_t r) {
  static const LineTransform f43 = make_line_transform(4, 3), f45 = make_line_transform(4, 5),
                             f47 = make_line_transform(4, 7), f63 = make_line_transform(6, 3),
                             f65 = make_line_transform(6, 5), f67 = make_line_transform(6, 7);
  if (m == 4) return r == 3 ? f43 : r == 5 ? f45 : f47;
  return r == 3 ? f63 : r == 5 ? f65 : f67;
}

// A 1xk or kx1 convolution as lines of tiles of m outputs: element (n, o, a) of the input, with
// o the index across the kernel's axis and a the index along it, is at
// n * in_n + o * in_o + a * in_a (NHWC strides); likewise for the output.
struct LineGeometry {
  int64_t n, across, len_in, len_out, cin, cout, pad;
  int64_t in_n, in_o, in_a, out_n, out_o, out_a;
  int64_t m = 4;
  // A line of m t + 1 outputs (17 with m = 4) would waste m - 1 outputs of its last tile: its
  // last output is computed directly instead (last_output()), r taps instead of m + r - 1
  // products.
  bool direct_last() const { return len_out > m && len_out % m == 1; }
  int64_t tiled_len() const { return direct_last() ? len_out - 1 : len_out; }
  int64_t tiles_per_line() const { return (tiled_len() + m - 1) / m; }
  int64_t tiles() const { return n * across * tiles_per_line(); }
  // Matrix products per line: (m + r - 1) per tile, r for a direct last output.
  int64_t products_per_line(int64_t r) const {
    return tiles_per_line() * (m + r - 1) + (direct_last() ? r : 0);
  }
};

struct LineTile {
  int64_t n, o, a;  // a: first output position along the axis
};

LineTile line_tile(const LineGeometry& g, int64_t t) {
  const int64_t per_line = g.tiles_per_line(), per_image = g.across * per_line;
  const int64_t r = t % per_image;
  return {t / per_image, r / per_line, (r % per_line) * g.m};
}

#if DD_X86

// x -> v [alpha, count, Cin]: B^T d for tiles [t0, t0 + count), the pairs +-p from one even and
// one odd half-sum each (LineTransform::even/odd).
template <int A>
DD_AVX2 void line_input(const float* x, const LineGeometry& g, const LineTransform& t,
                        int64_t t0, int64_t count, float* v) {
  constexpr int kHalf = A / 2, kPairs = (A - 2) / 2;
  const float *even = t.even.data(), *odd = t.odd.data();
  const __m256 zero = _mm256_setzero_ps();
  const int64_t plane = count * g.cin;  // floats between v's rows
  for (int64_t i = 0; i < count; i++) {
    const LineTile tile = line_tile(g, t0 + i);
    const float* line = x + tile.n * g.in_n + tile.o * g.in_o;
    const int64_t a0 = tile.a - g.pad;
    float* out = v + i * g.cin;
    for (int64_t c = 0; c < g.cin; c += kLanes) {
      __m256 d[A];
      for (int s = 0; s < A; s++) {
        const int64_t a = a0 + s;
        d[s] = a >= 0 && a < g.len_in ? _mm256_loadu_ps(line + a * g.in_a + c) : zero;
      }
      __m256 sum = zero;
      for (int k = 0; k < kHalf; k++) sum = _mm256_fmadd_ps(_mm256_set1_ps(even[k]), d[2 * k], sum);
      _mm256_storeu_ps(out + c, sum);
      for (int q = 0; q < kPairs; q++) {
        __m256 e = zero, o = zero;
        for (int k = 0; k < kHalf; k++) {
          e = _mm256_fmadd_ps(_mm256_set1_ps(even[(q + 1) * kHalf + k]), d[2 * k], e);
          o = _mm256_fmadd_ps(_mm256_set1_ps(odd[q * kHalf + k]), d[2 * k + 1], o);
        }
        _mm256_storeu_ps(out + (2 * q + 1) * plane + c, _mm256_add_ps(e, o));
        _mm256_storeu_ps(out + (2 * q + 2) * plane + c, _mm256_sub_ps(e, o));
      }
      sum = zero;
      for (int k = 0; k < kHalf; k++) {
        sum = _mm256_fmadd_ps(_mm256_set1_ps(odd[kPairs * kHalf + k]), d[2 * k + 1], sum);
      }
      _mm256_storeu_ps(out + (A - 1) * plane + c, sum);
    }
  }
}

// m [alpha, count, Cout] -> y: relu?(A^T m + bias) for tiles [t0, t0 + count) of M outputs: the
// pair (p, -p) adds p^i (m_p + m_-p) to even outputs i and p^i (m_p - m_-p) to odd ones; point 0
// reaches only output 0, infinity only output M - 1.
template <int A, int M>
DD_AVX2 void line_output(const float* m, const LineTransform& t, const float* bias, bool relu,
                         const LineGeometry& g, int64_t t0, int64_t count, float* y) {
  constexpr int kPairs = (A - 2) / 2;
  const float* powers = t.powers.data();
  const __m256 zero = _mm256_setzero_ps();
  const int64_t plane = count * g.cout;
  for (int64_t i = 0; i < count; i++) {
    const LineTile tile = line_tile(g, t0 + i);
    float* line = y + tile.n * g.out_n + tile.o * g.out_o;
    const int64_t valid = std::min<int64_t>(M, g.tiled_len() - tile.a);
    const float* in = m + i * g.cout;
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      __m256 acc[M];
      const __m256 b = bias ? _mm256_loadu_ps(bias + c) : zero;
      for (int q = 0; q < M; q++) acc[q] = b;
      acc[0] = _mm256_add_ps(acc[0], _mm256_loadu_ps(in + c));
      acc[M - 1] = _mm256_add_ps(acc[M - 1], _mm256_loadu_ps(in + (A - 1) * plane + c));
      for (int p = 0; p < kPairs; p++) {
        const __m256 plus = _mm256_loadu_ps(in + (2 * p + 1) * plane + c);
        const __m256 minus = _mm256_loadu_ps(in + (2 * p + 2) * plane + c);
        const __m256 sum = _mm256_add_ps(plus, minus), diff = _mm256_sub_ps(plus, minus);
        for (int q = 0; q < M; q++) {
          acc[q] = _mm256_fmadd_ps(_mm256_set1_ps(powers[p * M + q]), q % 2 ? diff : sum, acc[q]);
        }
      }
      for (int64_t q = 0; q < valid; q++) {
        const __m256 value = relu ? _mm256_max_ps(acc[q], zero) : acc[q];
        _mm256_storeu_ps(line + (tile.a + q) * g.out_a + c, value);
      }
    }
  }
}

// The last output of every line of image n, directly: y[n, o, q] = relu?(bias + sum over taps j of
// x[n, o, q - pad + j] w_j), one product [across, Cin] x [Cin, Cout] per tap inside the input;
// taps: [r, Cin, Cout] (panels).
DD_AVX2 void last_output(const float* x, const float* taps, int64_t r, const float* bias,
                         bool relu, const LineGeometry& g, int64_t n, float* y) {
  const int64_t q = g.len_out - 1;
  const int64_t first = std::max<int64_t>(0, g.pad - q);
  const int64_t end = std::min(r, g.len_in + g.pad - q);
  float* out = y + n * g.out_n + q * g.out_a;  // row o at out + o * out_o
  for (int64_t o = 0; o < g.across; o++) {
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      _mm256_storeu_ps(out + o * g.out_o + c,
                       bias ? _mm256_loadu_ps(bias + c) : _mm256_setzero_ps());
    }
  }
  for (int64_t j = first; j < end; j++) {
    const float* a = x + n * g.in_n + (q - g.pad + j) * g.in_a;  // row o at a + o * in_o
    gemm_panels(g.across, g.cout, g.cin, a, g.in_o, 1, taps + j * g.cin * g.cout, out, g.out_o,
                true);
  }
  if (!relu) return;
  for (int64_t o = 0; o < g.across; o++) {
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      float* p = out + o * g.out_o + c;
      _mm256_storeu_ps(p, _mm256_max_ps(_mm256_loadu_ps(p), _mm256_setzero_ps()));
    }
  }
}

template <int A, int M>
void run_line(const float* x, const float* u, const float* bias, bool relu, const LineGeometry& g,
              const LineTransform& t, float* y) {
  // As in winograd.cpp: a block's transformed input and output stay in the core's cache.
  const int64_t budget = 192 * 1024;
  const int64_t per_tile = A * (g.cin + g.cout);
  const int64_t block = dd::block_rows(budget / per_tile);
  const int64_t blocks = (g.tiles() + block - 1) / block;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    float* v = dd::thread_scratch(A * block * (g.cin + g.cout));  // [alpha, block, Cin]
    float* m = v + A * block * g.cin;                             // [alpha, block, Cout]
    for (int64_t b = begin; b < end; b++) {
      const int64_t t0 = b * block, count = std::min(block, g.tiles() - t0);
      line_input<A>(x, g, t, t0, count, v);
      for (int64_t p = 0; p < A; p++) {
        gemm_panels(count, g.cout, g.cin, v + p * count * g.cin, g.cin, 1, u + p * g.cin * g.cout,
                    m + p * count * g.cout, g.cout, false);
      }
      line_output<A, M>(m, t, bias, relu, g, t0, count, y);
    }
  });
}

#else

void last_output(const float*, const float*, int64_t, const float*, bool, const LineGeometry&,
                 int64_t, float*) {}

template <int A, int M>
void run_line(const float*, const float*, const float*, bool, const LineGeometry&,
              const LineTransform&, float*) {}

#endif

#if DD_X86

// wt [Cin, r, Cout] -> u [alpha, Cin, Cout] (panels): G g for eight output channels at a time,
// each thread on whole column panels, writing every panel row in order.
DD_AVX2 void transform_line_panels(const float* wt, const LineTransform& t, int64_t cin,
                                   int64_t cout, int64_t begin, int64_t end, float* u) {
  const int64_t r = t.r, alpha = t.alpha;
  for (int64_t p = begin; p < end; p++) {
    const int64_t co0 = p * dd::kPanel, width = dd::panel_width(cout, co0);
    for (int64_t ci = 0; ci < cin; ci++) {
      float* dst = u + panel_offset(cin, cout, ci, co0);
      for (int64_t v = 0; v < width; v += kLanes) {
        __m256 g[7];
        for (int64_t k = 0; k < r; k++) g[k] = _mm256_loadu_ps(wt + (ci * r + k) * cout + co0 + v);
        for (int64_t j = 0; j < alpha; j++) {
          __m256 sum = _mm256_setzero_ps();
          for (int64_t k = 0; k < r; k++) {
            sum = _mm256_fmadd_ps(_mm256_set1_ps(t.g[j * r + k]), g[k], sum);
          }
          _mm256_storeu_ps(dst + j * cin * cout + v, sum);
        }
      }
    }
  }
}

#else

void transform_line_panels(const float*, const LineTransform&, int64_t, int64_t, int64_t,
                           int64_t, float*) {}

#endif

// w [Cout, Cin, 1, k] or [Cout, Cin, k, 1] -> u [alpha, Cin, Cout] (panels): G g per channel
// pair, vectorised over output channels after one transpose (as transform_weight in
// winograd.cpp).
at::Tensor transform_line_weight(const at::Tensor& w, const LineTransform& t) {
  const int64_t cout = w.size(0), cin = w.size(1);
  // [Cout, Cin, r] -> [Cin, r, Cout]
  const at::Tensor wt = w.reshape({cout, cin, t.r}).permute({1, 2, 0}).contiguous();
  at::Tensor u = at::empty({t.alpha, cin, cout}, w.options());
  const int64_t panels = (cout + dd::kPanel - 1) / dd::kPanel;
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    transform_line_panels(wt.data_ptr<float>(), t, cin, cout, begin, end, u.data_ptr<float>());
  });
  return u;
}

}  // namespace

bool applies_line(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                  int64_t stride, int64_t pad_h, int64_t pad_w) {
  if (!enabled()) return false;
  if (!x.is_cpu() || !w.is_cpu() || x.scalar_type() != at::kFloat ||
      w.scalar_type() != at::kFloat || x.dim() != 4 || w.dim() != 4 || records_grad(x, w, b)) {
    return false;
  }
  const int64_t kh = w.size(2), kw = w.size(3), k = std::max(kh, kw);
  const bool along_w = kh == 1 && kw > 1, along_h = kw == 1 && kh > 1;
  const int64_t pad = along_w ? pad_w : pad_h, pad_across = along_w ? pad_h : pad_w;
  const int64_t len = along_w ? x.size(3) : x.size(2);
  return stride == 1 && (along_w || along_h) && (k == 3 || k == 5 || k == 7) &&
         w.size(1) == x.size(1) && x.size(1) % kLanes == 0 && w.size(0) % kLanes == 0 &&
         pad_across == 0 && pad >= 0 && pad < k && len + 2 * pad >= k && x.size(0) > 0 &&
         x.size(2) > 0 && x.size(3) > 0;
}

at::Tensor conv2d_line(const at::Tensor& input, const at::Tensor& w,
                       const c10::optional<at::Tensor>& b, int64_t pad_h, int64_t pad_w,
                       bool relu) {
  const at::Tensor x = pixel_major(input);
  const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), wd = x.size(3), cout = w.size(0);
  const bool along_w = w.size(2) == 1;
  const int64_t r = along_w ? w.size(3) : w.size(2);
  const int64_t ho = h + 2 * pad_h - w.size(2) + 1, wo = wd + 2 * pad_w - w.size(3) + 1;
  at::Tensor y =
      at::empty({n, cout, ho, wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  LineGeometry g;
  const int64_t in_n = x.stride(0), in_row = x.stride(2), in_pixel = x.stride(3);
  if (along_w) {  // lines are image rows
    g = {n, h, wd, wo, cin, cout, pad_w, in_n, in_row, in_pixel, ho * wo * cout, wo * cout, cout};
  } else {  // lines are image columns
    g = {n, wd, h, ho, cin, cout, pad_h, in_n, in_pixel, in_row, ho * wo * cout, cout, wo * cout};
  }
  LineGeometry with_six = g;
  with_six.m = 6;
  if (with_six.products_per_line(r) < g.products_per_line(r)) g = with_six;
  const LineTransform& t = line_transform(g.m, r);
  const at::Tensor u = transform_line_weight(w, t);
  const at::Tensor bias = b ? b->contiguous() : at::Tensor();
  const float* bp = b ? bias.data_ptr<float>() : nullptr;
  const float *xp = x.data_ptr<float>(), *up = u.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  switch (t.alpha * 10 + t.m) {  // alpha = m + r - 1
    case 64: run_line<6, 4>(xp, up, bp, relu, g, t, yp); break;
    case 84: run_line<8, 4>(xp, up, bp, relu, g, t, yp); break;
    case 104: run_line<10, 4>(xp, up, bp, relu, g, t, yp); break;
    case 86: run_line<8, 6>(xp, up, bp, relu, g, t, yp); break;
    case 106: run_line<10, 6>(xp, up, bp, relu, g, t, yp); break;
    default: run_line<12, 6>(xp, up, bp, relu, g, t, yp); break;
  }
  if (g.direct_last()) {
    LineTransform identity{0, r, r, {}, std::vector<float>(r * r, 0.0f), {}, {}, {}, {}};
    for (int64_t j = 0; j < r; j++) identity.g[j * r + j] = 1.0f;
    const at::Tensor taps = transform_line_weight(w, identity);  // [r, Cin, Cout] panels
    const float* tp = taps.data_ptr<float>();
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) last_output(xp, tp, r, bp, relu, g, i, yp);
    });
  }
  return y;
}

}  // namespace winograd
