// Winograd F(4x4, 3x3) convolution on the CPU (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016), in channels_last, for forward, input-gradient and weight-gradient;
// and F(2x2, 5x5), forward only, for the 5x5 branch of FID's Inception.
//
// A 4x4 output tile of a 3x3 correlation is Y = A^T [(G g G^T) . (B^T d B)] A (their eq. 7) with
// d the 6x6 input tile, g the 3x3 kernel and . the elementwise product. Summed over input
// channels, the elementwise product becomes 36 independent matrix products per batch of tiles,
// [tiles, Cin] x [Cin, Cout], one per tile position: 36 * Cin * Cout multiply-adds per tile
// instead of 144 * Cin * Cout, a 4x saving. The products run in a register-blocked AVX2 kernel
// (a BLAS call per product costs more than the product at these sizes); the transforms work on
// 8 channels at a time, which channels_last makes contiguous.
//
// Gradients reuse the same pieces: the input-gradient is the forward pass of the flipped,
// channel-transposed kernel with padding 2 - p; the weight-gradient is the transpose of eq. 7,
// dg = G^T [sum over tiles (B^T d B) . (A dY A^T)] G, again 36 matrix products.
//
// F(2x2, 5x5) uses the same 6x6 input tiles and the same interpolation points (0, 1, -1, 2, -2
// and infinity), so the same B^T and the same 36 products; only A^T (2x6) and G (6x5) differ:
// 36 multiply-adds per channel pair for four outputs instead of 100.
#include "winograd.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "panel_gemm.h"
#include "winograd_tiles.h"

namespace winograd {
namespace {

using dd::gemm_panels;
using dd::kLanes;
using dd::panel_offset;

constexpr int64_t kTile = 4;    // output tile side m of F(4x4, 3x3)
constexpr int64_t kTile5 = 2;   // output tile side m of F(2x2, 5x5)
constexpr int64_t kAlpha = 6;   // input tile side m + r - 1, for both
constexpr int64_t kPoints = 36; // kAlpha^2 tile positions, one matrix product each

// Tiles per block of work. Forward: a block's transformed input and output ([36, tiles, C] each)
// should stay in the core's cache between the transform, the 36 products and the inverse
// transform. Weight gradient: each block also re-reads and re-writes the thread's [36, Cin, Cout]
// sum, so larger blocks (longer products) pay more than cache residency.
int64_t block_tiles(const Geometry& g, int64_t budget_floats) {
  return dd::block_rows(budget_floats / (kPoints * (g.cin + g.cout)));
}

// 192 KiB: with few channels (the 32-channel stem of Inception, its 5x5 48->64 branch) blocks
// of 18-24 tiles ran 10-25% faster than the 40-50 a 768 KiB budget gave; wider layers sit at
// about the same block either way (the floor is 18).
constexpr int64_t kForwardBlockFloats = 48 * 1024;

constexpr int64_t kWeightGradBlockFloats = 768 * 1024;  // 3 MiB

#if DD_X86

DD_AVX2_INLINE __m256 mul_add(float a, __m256 x, __m256 y) {
  return _mm256_fmadd_ps(_mm256_set1_ps(a), x, y);
}

// B^T applied to one line of six values (the rows of B^T, Lavin & Gray section 5).
DD_AVX2_INLINE void input_line(__m256 d0, __m256 d1, __m256 d2, __m256 d3, __m256 d4,
                               __m256 d5, __m256* o, int64_t stride) {
  o[0 * stride] = mul_add(4.0f, d0, mul_add(-5.0f, d2, d4));
  o[1 * stride] = mul_add(-4.0f, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4));
  o[2 * stride] = mul_add(4.0f, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3));
  o[3 * stride] = mul_add(2.0f, _mm256_sub_ps(d3, d1), _mm256_sub_ps(d4, d2));
  o[4 * stride] = mul_add(2.0f, _mm256_sub_ps(d1, d3), _mm256_sub_ps(d4, d2));
  o[5 * stride] = mul_add(4.0f, d1, mul_add(-5.0f, d3, d5));
}

// A^T applied to one line of six values: four outputs.
DD_AVX2_INLINE void output_line(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 m4,
                                __m256 m5, __m256* o, int64_t stride) {
  const __m256 a = _mm256_add_ps(m1, m2), b = _mm256_sub_ps(m1, m2);
  const __m256 c = _mm256_add_ps(m3, m4), d = _mm256_sub_ps(m3, m4);
  o[0 * stride] = _mm256_add_ps(_mm256_add_ps(m0, a), c);
  o[1 * stride] = mul_add(2.0f, d, b);
  o[2 * stride] = mul_add(4.0f, c, a);
  o[3 * stride] = _mm256_add_ps(mul_add(8.0f, d, b), m5);
}

// A^T of F(2, 5) applied to one line of six values: two outputs.
DD_AVX2_INLINE void output_line(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 m4,
                                __m256 m5, __m256* o, int64_t stride,
                                std::integral_constant<int, 2>) {
  o[0 * stride] = _mm256_add_ps(_mm256_add_ps(m0, m1), _mm256_add_ps(_mm256_add_ps(m2, m3), m4));
  o[1 * stride] = _mm256_add_ps(mul_add(2.0f, _mm256_sub_ps(m3, m4), _mm256_sub_ps(m1, m2)), m5);
}

DD_AVX2_INLINE void output_line(__m256 m0, __m256 m1, __m256 m2, __m256 m3, __m256 m4,
                                __m256 m5, __m256* o, int64_t stride,
                                std::integral_constant<int, 4>) {
  output_line(m0, m1, m2, m3, m4, m5, o, stride);
}

// A applied to one line of four values (the output-gradient side of eq. 7): six outputs.
DD_AVX2_INLINE void output_grad_line(__m256 y0, __m256 y1, __m256 y2, __m256 y3, __m256* o,
                                     int64_t stride) {
  const __m256 even = _mm256_add_ps(y0, y2), odd = _mm256_add_ps(y1, y3);
  const __m256 even4 = mul_add(4.0f, y2, y0), odd8 = mul_add(8.0f, y3, _mm256_add_ps(y1, y1));
  o[0 * stride] = y0;
  o[1 * stride] = _mm256_add_ps(even, odd);
  o[2 * stride] = _mm256_sub_ps(even, odd);
  o[3 * stride] = _mm256_add_ps(even4, odd8);
  o[4 * stride] = _mm256_sub_ps(even4, odd8);
  o[5 * stride] = y3;
}

// x NHWC -> v [36, count, Cin]: B^T d B for tiles [t0, t0 + count).
DD_AVX2 void transform_input(const float* x, const Geometry& g, int64_t t0, int64_t count,
                             float* v) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < count; i++) {
    const TileOrigin o = tile_origin(g, t0 + i);
    const float* rows[kAlpha];  // input row of each tile row, null in the padding
    bool col_ok[kAlpha];
    for (int64_t r = 0; r < kAlpha; r++) {
      const int64_t y = o.y + r;
      rows[r] = (y >= 0 && y < g.h) ? x + (o.n * g.h + y) * g.w * g.x_pixel() : nullptr;
      col_ok[r] = o.x + r >= 0 && o.x + r < g.w;
    }
    for (int64_t c = 0; c < g.cin; c += kLanes) {
      __m256 d[kAlpha][kAlpha], t[kAlpha][kAlpha];
      for (int64_t r = 0; r < kAlpha; r++) {
        for (int64_t s = 0; s < kAlpha; s++) {
          d[r][s] = rows[r] && col_ok[s] ? _mm256_loadu_ps(rows[r] + (o.x + s) * g.x_pixel() + c)
                                         : zero;
        }
      }
      for (int64_t s = 0; s < kAlpha; s++) {  // columns: B^T d
        input_line(d[0][s], d[1][s], d[2][s], d[3][s], d[4][s], d[5][s], &t[0][s], kAlpha);
      }
      for (int64_t r = 0; r < kAlpha; r++) {  // rows: (B^T d) B
        __m256 out[kAlpha];
        input_line(t[r][0], t[r][1], t[r][2], t[r][3], t[r][4], t[r][5], out, 1);
        for (int64_t s = 0; s < kAlpha; s++) {
          _mm256_storeu_ps(v + ((r * kAlpha + s) * count + i) * g.cin + c, out[s]);
        }
      }
    }
  }
}

// m [36, count, Cout] -> y NHWC: relu?(A^T m A + bias) for tiles [t0, t0 + count) of side M.
template <int M>
DD_AVX2 void transform_output(const float* m, const float* bias, bool relu, const Geometry& g,
                              int64_t t0, int64_t count, float* y) {
  const std::integral_constant<int, M> side;
  const int64_t oh = g.out_h(), ow = g.out_w();
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < count; i++) {
    const TileOrigin o = tile_origin(g, t0 + i);
    const int64_t y0 = o.y + g.pad_h, x0 = o.x + g.pad_w;  // output coordinates of the tile
    const int64_t rows = std::min<int64_t>(M, oh - y0), cols = std::min<int64_t>(M, ow - x0);
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      __m256 t[M][kAlpha];
      for (int64_t s = 0; s < kAlpha; s++) {  // columns: A^T m
        const float* p = m + (s * count + i) * g.cout + c;
        const int64_t step = kAlpha * count * g.cout;  // next row of tile positions
        output_line(_mm256_loadu_ps(p), _mm256_loadu_ps(p + step), _mm256_loadu_ps(p + 2 * step),
                    _mm256_loadu_ps(p + 3 * step), _mm256_loadu_ps(p + 4 * step),
                    _mm256_loadu_ps(p + 5 * step), &t[0][s], kAlpha, side);
      }
      const __m256 b = bias ? _mm256_loadu_ps(bias + c) : zero;
      for (int64_t r = 0; r < rows; r++) {  // rows: (A^T m) A
        __m256 out[M];
        output_line(t[r][0], t[r][1], t[r][2], t[r][3], t[r][4], t[r][5], out, 1, side);
        float* dst = y + ((o.n * oh + y0 + r) * ow + x0) * g.cout + c;
        for (int64_t s = 0; s < cols; s++) {
          __m256 value = _mm256_add_ps(out[s], b);
          if (relu) value = _mm256_max_ps(value, zero);
          _mm256_storeu_ps(dst + s * g.cout, value);
        }
      }
    }
  }
}

// dy NHWC [N, Ho, Wo, Cout] -> dm [36, count, Cout] (panels): A dy A^T (zero outside the output).
DD_AVX2 void transform_output_grad(const float* dy, const Geometry& g, int64_t t0, int64_t count,
                                   float* dm) {
  const int64_t oh = g.out_h(), ow = g.out_w();
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < count; i++) {
    const TileOrigin o = tile_origin(g, t0 + i);
    const int64_t y0 = o.y + g.pad_h, x0 = o.x + g.pad_w;
    const int64_t rows = std::min(kTile, oh - y0), cols = std::min(kTile, ow - x0);
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      __m256 d[kTile][kTile], t[kAlpha][kTile];
      for (int64_t r = 0; r < kTile; r++) {
        const float* src = dy + ((o.n * oh + y0 + r) * ow + x0) * g.cout + c;
        for (int64_t s = 0; s < kTile; s++) {
          d[r][s] = r < rows && s < cols ? _mm256_loadu_ps(src + s * g.cout) : zero;
        }
      }
      for (int64_t s = 0; s < kTile; s++) {  // columns: A dy
        output_grad_line(d[0][s], d[1][s], d[2][s], d[3][s], &t[0][s], kTile);
      }
      for (int64_t r = 0; r < kAlpha; r++) {  // rows: (A dy) A^T
        __m256 out[kAlpha];
        output_grad_line(t[r][0], t[r][1], t[r][2], t[r][3], out, 1);
        const int64_t offset = panel_offset(count, g.cout, i, c);
        for (int64_t s = 0; s < kAlpha; s++) {
          _mm256_storeu_ps(dm + (r * kAlpha + s) * count * g.cout + offset, out[s]);
        }
      }
    }
  }
}

#else

void transform_input(const float*, const Geometry&, int64_t, int64_t, float*) {}
template <int M>
void transform_output(const float*, const float*, bool, const Geometry&, int64_t, int64_t,
                      float*) {}
void transform_output_grad(const float*, const Geometry&, int64_t, int64_t, float*) {}

#endif

#if DD_X86

// G applied to R kernel values g[0], g[stride], ... (eight output channels each): the kernel
// evaluated at the points 0, 1, -1, 2, -2 (scaled by 1 / prod over the other points of (p - q))
// and at infinity.
template <int R>
DD_AVX2_INLINE void kernel_line(const __m256* g, int64_t stride, __m256* o);

// v / d, correctly rounded. Multiplying by a rounded 1/6 instead biases every value at the
// points 1, -1, 2, -2 the same way, and the output transform's sums amplify a shared bias: the
// U-Net test's error against PyTorch grew from 4.5e-5 to 1.1e-4 of the output that way.
DD_AVX2_INLINE __m256 over(__m256 v, float d) { return _mm256_div_ps(v, _mm256_set1_ps(d)); }

template <>
DD_AVX2_INLINE void kernel_line<3>(const __m256* g, int64_t stride, __m256* o) {
  const __m256 g0 = g[0], g1 = g[stride], g2 = g[2 * stride];
  o[0] = over(g0, 4.0f);
  o[1] = over(_mm256_add_ps(_mm256_add_ps(g0, g1), g2), -6.0f);
  o[2] = over(_mm256_add_ps(_mm256_sub_ps(g0, g1), g2), -6.0f);
  o[3] = _mm256_add_ps(_mm256_add_ps(over(g0, 24.0f), over(g1, 12.0f)), over(g2, 6.0f));
  o[4] = _mm256_add_ps(_mm256_sub_ps(over(g0, 24.0f), over(g1, 12.0f)), over(g2, 6.0f));
  o[5] = g2;
}

template <>
DD_AVX2_INLINE void kernel_line<5>(const __m256* g, int64_t stride, __m256* o) {
  const __m256 g0 = g[0], g1 = g[stride], g2 = g[2 * stride], g3 = g[3 * stride],
               g4 = g[4 * stride];
  const __m256 even = _mm256_add_ps(_mm256_add_ps(g0, g2), g4), odd = _mm256_add_ps(g1, g3);
  const __m256 even2 = mul_add(4.0f, g2, mul_add(16.0f, g4, g0)), odd2 = mul_add(4.0f, g3, g1);
  o[0] = over(g0, 4.0f);
  o[1] = over(_mm256_add_ps(even, odd), -6.0f);
  o[2] = over(_mm256_sub_ps(even, odd), -6.0f);
  o[3] = over(mul_add(2.0f, odd2, even2), 24.0f);
  o[4] = over(mul_add(-2.0f, odd2, even2), 24.0f);
  o[5] = g4;
}

// wt [Cin, R, R, Cout] -> u [36, Cin, Cout] (panels): G g G^T for eight output channels at a
// time, each thread on whole column panels, writing every panel row in order.
template <int R>
DD_AVX2 void transform_weight_panels(const float* wt, int64_t cin, int64_t cout, int64_t begin,
                                     int64_t end, float* u) {
  for (int64_t j = begin; j < end; j++) {
    const int64_t co0 = j * dd::kPanel, width = dd::panel_width(cout, co0);
    for (int64_t ci = 0; ci < cin; ci++) {
      float* dst = u + panel_offset(cin, cout, ci, co0);
      for (int64_t v = 0; v < width; v += kLanes) {
        __m256 g[R * R], t[kAlpha][R], out[kAlpha];
        for (int64_t k = 0; k < R * R; k++) {
          g[k] = _mm256_loadu_ps(wt + (ci * R * R + k) * cout + co0 + v);
        }
        for (int64_t k = 0; k < R; k++) {  // G g, column k
          __m256 col[kAlpha];
          kernel_line<R>(g + k, R, col);
          for (int64_t r = 0; r < kAlpha; r++) t[r][k] = col[r];
        }
        for (int64_t r = 0; r < kAlpha; r++) {  // (G g) G^T
          kernel_line<R>(t[r], 1, out);
          for (int64_t s = 0; s < kAlpha; s++) {
            _mm256_storeu_ps(dst + (r * kAlpha + s) * cin * cout + v, out[s]);
          }
        }
      }
    }
  }
}

#else

template <int R>
void transform_weight_panels(const float*, int64_t, int64_t, int64_t, int64_t, float*) {}

#endif

// w [Cout, Cin, R, R] -> u [36, Cin, Cout] (panels): G g G^T per channel pair, vectorised over
// output channels after one transpose of w. The scalar version, scattering each channel pair's
// 36 values across the 36 matrices, took 12-16 ms for 448->384 channels (the convolution itself,
// at 8x8, 44).
template <int R>
at::Tensor transform_weight(const at::Tensor& w) {
  const at::Tensor wt = w.permute({1, 2, 3, 0}).contiguous();  // [Cin, R, R, Cout]
  const int64_t cout = w.size(0), cin = w.size(1);
  at::Tensor u = at::empty({kPoints, cin, cout}, w.options());
  const int64_t panels = (cout + dd::kPanel - 1) / dd::kPanel;
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    transform_weight_panels<R>(wt.data_ptr<float>(), cin, cout, begin, end, u.data_ptr<float>());
  });
  return u;
}

// du [36, Cin, Cout] -> dw [Cout, Cin, 3, 3]: G^T du G per channel pair.
at::Tensor weight_from_transformed_grad(const at::Tensor& du, int64_t cin, int64_t cout) {
  at::Tensor dw = at::empty({cout, cin, 3, 3}, du.options());
  const float* src = du.data_ptr<float>();
  float* dst = dw.data_ptr<float>();
  auto gt_line = [](const float* v, int64_t stride, float* o) {  // G^T applied to six values
    const float v0 = v[0], v1 = v[stride], v2 = v[2 * stride], v3 = v[3 * stride],
                v4 = v[4 * stride], v5 = v[5 * stride];
    o[0] = v0 / 4.0f - (v1 + v2) / 6.0f + (v3 + v4) / 24.0f;
    o[1] = (v2 - v1) / 6.0f + (v3 - v4) / 12.0f;
    o[2] = (v3 + v4 - v1 - v2) / 6.0f + v5;
  };
  at::parallel_for(0, cout, 1, [&](int64_t begin, int64_t end) {
    for (int64_t co = begin; co < end; co++) {
      for (int64_t ci = 0; ci < cin; ci++) {
        float tile[kPoints], t[3][kAlpha];
        for (int64_t p = 0; p < kPoints; p++) tile[p] = src[(p * cin + ci) * cout + co];
        for (int64_t s = 0; s < kAlpha; s++) {  // G^T du, column s
          float col[3];
          gt_line(tile + s, kAlpha, col);
          for (int64_t r = 0; r < 3; r++) t[r][s] = col[r];
        }
        float* g = dst + (co * cin + ci) * 9;
        for (int64_t r = 0; r < 3; r++) gt_line(t[r], 1, g + r * 3);  // (G^T du) G
      }
    }
  });
  return dw;
}

at::Tensor nhwc(const at::Tensor& t) { return t.contiguous(at::MemoryFormat::ChannelsLast); }

// x pixel-major ([N, Cin, H, W], see pixel_major()), u [36, Cin, Cout] -> [N, Cout, Ho, Wo]
// channels_last, for a kernel of side 3 (F(4x4, 3x3)) or 5 (F(2x2, 5x5)).
at::Tensor forward_transformed(const at::Tensor& x, const at::Tensor& u, const float* bias,
                               bool relu, int64_t pad_h, int64_t pad_w, int64_t kernel = 3) {
  const int64_t tile = kernel == 5 ? kTile5 : kTile;
  const Geometry g{x.size(0), x.size(2), x.size(3), u.size(1), u.size(2), pad_h, pad_w, tile,
                   kernel, x.stride(3)};
  at::Tensor y = at::empty({g.n, g.cout, g.out_h(), g.out_w()},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* xp = x.data_ptr<float>();
  const float* up = u.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t block = block_tiles(g, kForwardBlockFloats);
  const int64_t blocks = (g.tiles() + block - 1) / block;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    float* v = dd::thread_scratch(kPoints * block * (g.cin + g.cout));  // [36, block, Cin]
    float* m = v + kPoints * block * g.cin;                              // [36, block, Cout]
    for (int64_t b = begin; b < end; b++) {
      const int64_t t0 = b * block, count = std::min(block, g.tiles() - t0);
      transform_input(xp, g, t0, count, v);
      for (int64_t p = 0; p < kPoints; p++) {
        gemm_panels(count, g.cout, g.cin, v + p * count * g.cin, g.cin, 1, up + p * g.cin * g.cout,
                    m + p * count * g.cout, g.cout, false);
      }
      if (tile == kTile5) {
        transform_output<kTile5>(m, bias, relu, g, t0, count, yp);
      } else {
        transform_output<kTile>(m, bias, relu, g, t0, count, yp);
      }
    }
  });
  return y;
}

// dL/dx = conv(dy, w flipped and channel-transposed, padding 2 - p): [N, Cin, H, W].
at::Tensor input_grad(const at::Tensor& dy, const at::Tensor& w, int64_t pad_h, int64_t pad_w) {
  const at::Tensor flipped = w.transpose(0, 1).flip({2, 3});  // [Cin, Cout, 3, 3]
  return forward_transformed(dy, transform_weight<3>(flipped), nullptr, false, 2 - pad_h,
                             2 - pad_w);
}

// dL/dw for y = conv(x, w) given dy: [Cout, Cin, 3, 3].
at::Tensor weight_grad(const at::Tensor& x, const at::Tensor& dy, int64_t pad_h, int64_t pad_w) {
  const Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), dy.size(1), pad_h, pad_w};
  const float* xp = x.data_ptr<float>();
  const float* dyp = dy.data_ptr<float>();
  at::Tensor du = at::zeros({kPoints, g.cin, g.cout}, x.options());
  float* dup = du.data_ptr<float>();
  std::mutex merge;
  const int64_t block = block_tiles(g, kWeightGradBlockFloats);
  const int64_t blocks = (g.tiles() + block - 1) / block;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t du_size = kPoints * g.cin * g.cout;
    const int64_t scratch = kPoints * block * (g.cin + g.cout) + du_size;
    float* v = dd::thread_scratch(scratch);       // [36, block, Cin]
    float* dm = v + kPoints * block * g.cin;      // [36, block, Cout]
    float* partial = dm + kPoints * block * g.cout;  // [36, Cin, Cout], this thread's sum
    for (int64_t b = begin; b < end; b++) {
      const int64_t t0 = b * block, count = std::min(block, g.tiles() - t0);
      transform_input(xp, g, t0, count, v);
      transform_output_grad(dyp, g, t0, count, dm);
      for (int64_t p = 0; p < kPoints; p++) {  // du_p += v_p^T dm_p
        gemm_panels(g.cin, g.cout, count, v + p * count * g.cin, 1, g.cin, dm + p * count * g.cout,
                    partial + p * g.cin * g.cout, g.cout, b != begin);
      }
    }
    if (begin >= end) return;
    std::lock_guard<std::mutex> lock(merge);
    for (int64_t i = 0; i < du_size; i++) dup[i] += partial[i];
  });
  return weight_from_transformed_grad(du, g.cin, g.cout);
}

at::Tensor forward(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                   int64_t pad_h, int64_t pad_w, bool relu) {
  const at::Tensor bias = b ? b->contiguous() : at::Tensor();
  const float* bias_data = b ? bias.data_ptr<float>() : nullptr;
  if (w.size(2) == 5) {
    return forward_transformed(pixel_major(x), transform_weight<5>(w), bias_data, relu, pad_h,
                               pad_w, 5);
  }
  return forward_transformed(pixel_major(x), transform_weight<3>(w), bias_data, relu, pad_h, pad_w);
}

class Function : public torch::autograd::Function<Function> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, const at::Tensor& b, int64_t pad_h,
                            int64_t pad_w) {
    const at::Tensor xl = nhwc(x);
    ctx->save_for_backward({xl, w});
    ctx->saved_data["pad_h"] = pad_h;
    ctx->saved_data["pad_w"] = pad_w;
    const bool has_bias = b.numel() > 0;
    ctx->saved_data["bias"] = has_bias;
    return winograd::forward(xl, w, has_bias ? c10::optional<at::Tensor>(b) : c10::nullopt, pad_h,
                             pad_w, false);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const int64_t pad_h = ctx->saved_data["pad_h"].toInt();
    const int64_t pad_w = ctx->saved_data["pad_w"].toInt();
    const at::Tensor dy = nhwc(grads[0]);
    at::Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) dx = input_grad(dy, w, pad_h, pad_w);
    if (ctx->needs_input_grad(1)) dw = weight_grad(x, dy, pad_h, pad_w);
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) db = dy.sum({0, 2, 3});
    return {dx, dw, db, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor pixel_major(const at::Tensor& x) {
  const int64_t pixel = x.stride(3);
  const bool ok = x.dim() == 4 && x.stride(1) == 1 && pixel >= x.size(1) &&
                  x.stride(2) == x.size(3) * pixel && x.stride(0) == x.size(2) * x.stride(2);
  if (ok) return x;
  // A fresh tensor: contiguous(ChannelsLast) may keep odd strides on dimensions of size 1.
  at::Tensor copy = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::ChannelsLast));
  return copy.copy_(x);
}

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("DENO_DIFFUSION_WINOGRAD");
    return !(v && std::strcmp(v, "0") == 0) && dd::cpu_supported();
  }();
  return on;
}

bool records_grad(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b) {
  return c10::GradMode::is_enabled() &&
         (x.requires_grad() || w.requires_grad() || (b && b->requires_grad()));
}

bool applies(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
             int64_t stride, int64_t pad_h, int64_t pad_w) {
  if (!enabled()) return false;
  if (!x.is_cpu() || !w.is_cpu() || x.scalar_type() != at::kFloat ||
      w.scalar_type() != at::kFloat || x.dim() != 4 || w.dim() != 4) {
    return false;
  }
  const int64_t cin = x.size(1), cout = w.size(0), k = w.size(2);
  const bool kernel_ok = (k == 3 || (k == 5 && !records_grad(x, w, b))) && w.size(3) == k;
  return stride == 1 && w.size(1) == cin && kernel_ok && pad_h >= 0 && pad_h < k && pad_w >= 0 &&
         pad_w < k && cin % kLanes == 0 && cout % kLanes == 0 && x.size(0) > 0 &&
         x.size(2) + 2 * pad_h >= k && x.size(3) + 2 * pad_w >= k;
}

at::Tensor conv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                  int64_t pad_h, int64_t pad_w, bool relu) {
  if (!records_grad(x, w, b)) {
    const int64_t out_h = x.size(2) + 2 * pad_h - 2, out_w = x.size(3) + 2 * pad_w - 2;
    if (w.size(2) == 3 && prefers_f6(x.size(1), out_h, out_w)) {
      return conv2d_f6(x, w, b, pad_h, pad_w, relu);
    }
    return forward(x, w, b, pad_h, pad_w, relu);
  }
  // 1.13's custom functions reject undefined inputs: no bias travels as an empty tensor.
  at::Tensor y = Function::apply(x, w, b ? *b : at::empty({0}, w.options()), pad_h, pad_w);
  return relu ? at::relu(y) : y;
}

}  // namespace winograd
