// Winograd F(m, r) along one axis for 1xk and kx1 convolutions (k = 3, 5, 7), CPU float32,
// channels_last, forward only (inference: FID's Inception spends a quarter of its FLOPs in 1x7
// and 7x1 convolutions).
//
// Each tile of m outputs along the kernel's axis takes m + r - 1 products, summed over input
// channels as m + r - 1 matrix products [tiles, Cin] x [Cin, Cout] (transforms: toom_cook.h).
// m is 4 or 6, whichever needs fewer products for the line length: Inception's 17-long lines
// take three F(6, 7) tiles (36 products per line and channel pair) rather than four F(4, 7)
// tiles and one direct output (47; directly, 119): their 1x7 and 7x1 convolutions ran 22-33%
// faster that way, with the transforms' pairs +-p (toom_cook.h) included.
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "panel_gemm.h"
#include "toom_cook.h"
#include "winograd.h"

namespace winograd {
namespace {

using dd::gemm_panels;
using dd::kLanes;
using dd::panel_offset;
using toom_cook::Transform;

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

// x -> v [alpha, count, Cin]: B^T d for tiles [t0, t0 + count).
template <int A>
DD_AVX2 void line_input(const float* x, const LineGeometry& g, const Transform& t, int64_t t0,
                        int64_t count, float* v) {
  const __m256 zero = _mm256_setzero_ps();
  const int64_t plane = count * g.cin;  // floats between v's rows
  for (int64_t i = 0; i < count; i++) {
    const LineTile tile = line_tile(g, t0 + i);
    const float* line = x + tile.n * g.in_n + tile.o * g.in_o;
    const int64_t a0 = tile.a - g.pad;
    for (int64_t c = 0; c < g.cin; c += kLanes) {
      __m256 d[A], out[A];
      for (int s = 0; s < A; s++) {
        const int64_t a = a0 + s;
        d[s] = a >= 0 && a < g.len_in ? _mm256_loadu_ps(line + a * g.in_a + c) : zero;
      }
      toom_cook::input_points<A>(d, t, out);
      for (int j = 0; j < A; j++) _mm256_storeu_ps(v + j * plane + i * g.cin + c, out[j]);
    }
  }
}

// m [alpha, count, Cout] -> y: relu?(A^T m + bias) for tiles [t0, t0 + count) of M outputs.
template <int A, int M>
DD_AVX2 void line_output(const float* m, const Transform& t, const float* bias, bool relu,
                         const LineGeometry& g, int64_t t0, int64_t count, float* y) {
  const __m256 zero = _mm256_setzero_ps();
  const int64_t plane = count * g.cout;
  for (int64_t i = 0; i < count; i++) {
    const LineTile tile = line_tile(g, t0 + i);
    float* line = y + tile.n * g.out_n + tile.o * g.out_o;
    const int64_t valid = std::min<int64_t>(M, g.tiled_len() - tile.a);
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      __m256 mv[A], out[M];
      for (int j = 0; j < A; j++) mv[j] = _mm256_loadu_ps(m + j * plane + i * g.cout + c);
      toom_cook::output_points<A, M>(mv, t, out);
      const __m256 b = bias ? _mm256_loadu_ps(bias + c) : zero;
      for (int64_t q = 0; q < valid; q++) {
        const __m256 value = _mm256_add_ps(out[q], b);
        _mm256_storeu_ps(line + (tile.a + q) * g.out_a + c,
                         relu ? _mm256_max_ps(value, zero) : value);
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
              const Transform& t, float* y) {
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
              const Transform&, float*) {}

#endif

#if DD_X86

// wt [Cin, r, Cout] -> u [alpha, Cin, Cout] (panels): G g for eight output channels at a time,
// each thread on whole column panels, writing every panel row in order.
DD_AVX2 void transform_line_panels(const float* wt, const Transform& t, int64_t cin,
                                   int64_t cout, int64_t begin, int64_t end, float* u) {
  const int64_t r = t.r, alpha = t.alpha;
  for (int64_t p = begin; p < end; p++) {
    const int64_t co0 = p * dd::kPanel, width = dd::panel_width(cout, co0);
    for (int64_t ci = 0; ci < cin; ci++) {
      float* dst = u + panel_offset(cin, cout, ci, co0);
      for (int64_t v = 0; v < width; v += kLanes) {
        __m256 g[7], points[12];
        for (int64_t k = 0; k < r; k++) g[k] = _mm256_loadu_ps(wt + (ci * r + k) * cout + co0 + v);
        toom_cook::kernel_points(g, 1, t, points);
        for (int64_t j = 0; j < alpha; j++) _mm256_storeu_ps(dst + j * cin * cout + v, points[j]);
      }
    }
  }
}

#else

void transform_line_panels(const float*, const Transform&, int64_t, int64_t, int64_t,
                           int64_t, float*) {}

#endif

// w [Cout, Cin, 1, k] or [Cout, Cin, k, 1] -> u [alpha, Cin, Cout] (panels): G g per channel
// pair, vectorised over output channels after one transpose (as transform_weight in
// winograd.cpp).
at::Tensor transform_line_weight(const at::Tensor& w, const Transform& t) {
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
  const Transform& t = toom_cook::transform(g.m, r);
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
    Transform identity{0, r, r, {}, std::vector<float>(r * r, 0.0f), {}, {}, {}, {}};
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
