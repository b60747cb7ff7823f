// Winograd F(6x6, 3x3) for CPU float32 inference, channels_last: 64 matrix products
// [tiles, Cin] x [Cin, Cout] per 6x6 output tile, 1.78 per output instead of the 2.25 of
// F(4x4, 3x3) (winograd.cpp). FID's Inception runs its wider 3x3 convolutions (64-192 input
// channels) at 71, 35 and 17 outputs a side without gradients: 6x6 tiles take 21-36% fewer
// products there, and the convolutions ran 5-28% faster than with 4x4 tiles. The tile is F(6, 3)
// along both axes (toom_cook.h): Y = A^T [(G g G^T) . (B^T d B)] A (Lavin & Gray 2016, eq. 7);
// float32 rounding ~1e-5 of the largest output against ~7e-6 with 4x4 tiles.
#include <ATen/Parallel.h>

#include "panel_gemm.h"
#include "toom_cook.h"
#include "winograd.h"
#include "winograd_tiles.h"

namespace winograd {
namespace {

using dd::gemm_panels;
using dd::kLanes;
using dd::panel_offset;
using toom_cook::Transform;

constexpr int kSide = 6;    // outputs per tile side
constexpr int kAlpha = 8;   // inputs per tile side
constexpr int64_t kPoints = kAlpha * kAlpha;

// Tiles per block: the block's transformed input and output ([64, tiles, C] each) should stay
// in a core's L2 cache (512 KiB here) between the transform, the 64 products and the inverse
// transform. Measured on Inception's 3x3 layers (64 to 192 channels): blocks of 6 tiles ran
// 5-10% faster than blocks of 12 or 18, though each panel of weights then serves one row tile.
int64_t block_tiles(int64_t cin, int64_t cout) {
  constexpr int64_t kBudgetFloats = 96 * 1024;
  const int64_t wanted = kBudgetFloats / (kPoints * (cin + cout));
  return std::max(dd::kTileRows, std::min<int64_t>(252, wanted) / dd::kTileRows * dd::kTileRows);
}

#if DD_X86

DD_AVX2_INLINE __m256 mul_add(float a, __m256 x, __m256 y) {
  return _mm256_fmadd_ps(_mm256_set1_ps(a), x, y);
}

// B^T of F(6, 3) applied to eight values, by the pairs of points +-1, +-2, +-1/2 (toom_cook.h
// builds the same matrix; written out here so that its coefficients are constants: with them
// read from memory, the 8x8 transforms ran 2-4x slower than those of F(4x4, 3x3) per output).
DD_AVX2_INLINE void input_line(const __m256* d, int64_t in, __m256* o, int64_t out) {
  const __m256 d0 = d[0], d1 = d[in], d2 = d[2 * in], d3 = d[3 * in], d4 = d[4 * in],
               d5 = d[5 * in], d6 = d[6 * in], d7 = d[7 * in];
  o[0] = mul_add(5.25f, _mm256_sub_ps(d2, d4), _mm256_sub_ps(d6, d0));
  const __m256 e1 = mul_add(-4.25f, d4, _mm256_add_ps(d2, d6));
  const __m256 o1 = mul_add(-4.25f, d3, _mm256_add_ps(d1, d5));
  o[1 * out] = _mm256_add_ps(e1, o1);
  o[2 * out] = _mm256_sub_ps(e1, o1);
  const __m256 e2 = mul_add(0.25f, d2, mul_add(-1.25f, d4, d6));
  const __m256 o2 = mul_add(0.5f, d1, mul_add(-2.5f, d3, _mm256_add_ps(d5, d5)));
  o[3 * out] = _mm256_add_ps(e2, o2);
  o[4 * out] = _mm256_sub_ps(e2, o2);
  const __m256 e3 = mul_add(4.0f, d2, mul_add(-5.0f, d4, d6));
  const __m256 o3 = mul_add(2.0f, d1, mul_add(-2.5f, d3, _mm256_mul_ps(_mm256_set1_ps(0.5f), d5)));
  o[5 * out] = _mm256_add_ps(e3, o3);
  o[6 * out] = _mm256_sub_ps(e3, o3);
  o[7 * out] = mul_add(5.25f, _mm256_sub_ps(d3, d5), _mm256_sub_ps(d7, d1));
}

// A^T of F(6, 3) applied to eight values: six outputs.
DD_AVX2_INLINE void output_line(const __m256* m, int64_t in, __m256* o) {
  const __m256 s1 = _mm256_add_ps(m[in], m[2 * in]), d1 = _mm256_sub_ps(m[in], m[2 * in]);
  const __m256 s2 = _mm256_add_ps(m[3 * in], m[4 * in]), d2 = _mm256_sub_ps(m[3 * in], m[4 * in]);
  const __m256 s3 = _mm256_add_ps(m[5 * in], m[6 * in]), d3 = _mm256_sub_ps(m[5 * in], m[6 * in]);
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s1), _mm256_add_ps(s2, s3));
  o[1] = mul_add(2.0f, d2, mul_add(0.5f, d3, d1));
  o[2] = mul_add(4.0f, s2, mul_add(0.25f, s3, s1));
  o[3] = mul_add(8.0f, d2, mul_add(0.125f, d3, d1));
  o[4] = mul_add(16.0f, s2, mul_add(0.0625f, s3, s1));
  o[5] = _mm256_add_ps(mul_add(32.0f, d2, mul_add(0.03125f, d3, d1)), m[7 * in]);
}

// x NHWC -> v [64, count, Cin]: B^T d B for tiles [t0, t0 + count).
DD_AVX2 void input_tiles(const float* x, const Geometry& g, int64_t t0, int64_t count,
                         float* v) {
  const __m256 zero = _mm256_setzero_ps();
  const int64_t plane = count * g.cin;
  for (int64_t i = 0; i < count; i++) {
    const TileOrigin o = tile_origin(g, t0 + i);
    const float* rows[kAlpha];  // input row of each tile row, null in the padding
    bool col_ok[kAlpha];
    for (int r = 0; r < kAlpha; r++) {
      const int64_t y = o.y + r;
      rows[r] = y >= 0 && y < g.h ? x + (o.n * g.h + y) * g.w * g.x_pixel() : nullptr;
      col_ok[r] = o.x + r >= 0 && o.x + r < g.w;
    }
    for (int64_t c = 0; c < g.cin; c += kLanes) {
      __m256 d[kAlpha][kAlpha], t[kAlpha][kAlpha];
      for (int r = 0; r < kAlpha; r++) {
        for (int s = 0; s < kAlpha; s++) {
          const bool inside = rows[r] && col_ok[s];
          d[r][s] = inside ? _mm256_loadu_ps(rows[r] + (o.x + s) * g.x_pixel() + c) : zero;
        }
      }
      for (int s = 0; s < kAlpha; s++) input_line(&d[0][s], kAlpha, &t[0][s], kAlpha);  // B^T d
      for (int r = 0; r < kAlpha; r++) {  // (B^T d) B
        __m256 out[kAlpha];
        input_line(t[r], 1, out, 1);
        for (int s = 0; s < kAlpha; s++) {
          _mm256_storeu_ps(v + (r * kAlpha + s) * plane + i * g.cin + c, out[s]);
        }
      }
    }
  }
}

// m [64, count, Cout] -> y NHWC: relu?(A^T m A + bias) for tiles [t0, t0 + count).
DD_AVX2 void output_tiles(const float* m, const float* bias, bool relu, const Geometry& g,
                          int64_t t0, int64_t count, float* y) {
  const int64_t oh = g.out_h(), ow = g.out_w(), plane = count * g.cout;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < count; i++) {
    const TileOrigin o = tile_origin(g, t0 + i);
    const int64_t y0 = o.y + g.pad_h, x0 = o.x + g.pad_w;  // output coordinates of the tile
    const int64_t rows = std::min<int64_t>(kSide, oh - y0);
    const int64_t cols = std::min<int64_t>(kSide, ow - x0);
    for (int64_t c = 0; c < g.cout; c += kLanes) {
      __m256 t[kSide][kAlpha], out[kSide];
      for (int s = 0; s < kAlpha; s++) {  // columns: A^T m
        __m256 mv[kAlpha];
        for (int r = 0; r < kAlpha; r++) {
          mv[r] = _mm256_loadu_ps(m + (r * kAlpha + s) * plane + i * g.cout + c);
        }
        output_line(mv, 1, out);
        for (int q = 0; q < kSide; q++) t[q][s] = out[q];
      }
      const __m256 b = bias ? _mm256_loadu_ps(bias + c) : zero;
      for (int64_t q = 0; q < rows; q++) {  // rows: (A^T m) A
        output_line(t[q], 1, out);
        float* dst = y + ((o.n * oh + y0 + q) * ow + x0) * g.cout + c;
        for (int64_t s = 0; s < cols; s++) {
          const __m256 value = _mm256_add_ps(out[s], b);
          _mm256_storeu_ps(dst + s * g.cout, relu ? _mm256_max_ps(value, zero) : value);
        }
      }
    }
  }
}

// wt [Cin, 3, 3, Cout] -> u [64, Cin, Cout] (panels): G g G^T for eight output channels at a
// time, each thread on whole column panels.
DD_AVX2 void weight_panels(const float* wt, const Transform& f, int64_t cin, int64_t cout,
                           int64_t begin, int64_t end, float* u) {
  for (int64_t j = begin; j < end; j++) {
    const int64_t co0 = j * dd::kPanel, width = dd::panel_width(cout, co0);
    for (int64_t ci = 0; ci < cin; ci++) {
      float* dst = u + panel_offset(cin, cout, ci, co0);
      for (int64_t v = 0; v < width; v += kLanes) {
        __m256 g[9], t[kAlpha][3], col[kAlpha], out[kAlpha];
        for (int k = 0; k < 9; k++) g[k] = _mm256_loadu_ps(wt + (ci * 9 + k) * cout + co0 + v);
        for (int k = 0; k < 3; k++) {  // G g, column k
          toom_cook::kernel_points(g + k, 3, f, col);
          for (int r = 0; r < kAlpha; r++) t[r][k] = col[r];
        }
        for (int r = 0; r < kAlpha; r++) {  // (G g) G^T
          toom_cook::kernel_points(t[r], 1, f, out);
          for (int s = 0; s < kAlpha; s++) {
            _mm256_storeu_ps(dst + (r * kAlpha + s) * cin * cout + v, out[s]);
          }
        }
      }
    }
  }
}

#else

void input_tiles(const float*, const Geometry&, int64_t, int64_t, float*) {}
void output_tiles(const float*, const float*, bool, const Geometry&, int64_t, int64_t, float*) {}
void weight_panels(const float*, const Transform&, int64_t, int64_t, int64_t, int64_t, float*) {}

#endif

}  // namespace

bool prefers_f6(int64_t cin, int64_t out_h, int64_t out_w) {
  const auto tiles = [](int64_t len, int64_t side) { return (len + side - 1) / side; };
  // Below 64 input channels the transforms, not the products, take most of the time, and 6x6
  // tiles measured no faster (Inception's 32-channel stem at 147 and 149 pixels).
  const int64_t products6 = tiles(out_h, 6) * tiles(out_w, 6) * 64;
  return cin >= 64 && products6 < tiles(out_h, 4) * tiles(out_w, 4) * 36;
}

at::Tensor conv2d_f6(const at::Tensor& input, const at::Tensor& w,
                     const c10::optional<at::Tensor>& b, int64_t pad_h, int64_t pad_w, bool relu) {
  const at::Tensor x = pixel_major(input);
  const Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), w.size(0), pad_h, pad_w, kSide, 3,
                   x.stride(3)};
  const Transform& f = toom_cook::transform(kSide, 3);

  const at::Tensor wt = w.permute({1, 2, 3, 0}).contiguous();  // [Cin, 3, 3, Cout]
  at::Tensor u = at::empty({kPoints, g.cin, g.cout}, w.options());
  const int64_t panels = (g.cout + dd::kPanel - 1) / dd::kPanel;
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    weight_panels(wt.data_ptr<float>(), f, g.cin, g.cout, begin, end, u.data_ptr<float>());
  });

  at::Tensor y = at::empty({g.n, g.cout, g.out_h(), g.out_w()},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const at::Tensor bias = b ? b->contiguous() : at::Tensor();
  const float* bp = b ? bias.data_ptr<float>() : nullptr;
  const float *xp = x.data_ptr<float>(), *up = u.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t block = block_tiles(g.cin, g.cout);
  const int64_t blocks = (g.tiles() + block - 1) / block;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    float* v = dd::thread_scratch(kPoints * block * (g.cin + g.cout));  // [64, block, Cin]
    float* m = v + kPoints * block * g.cin;                              // [64, block, Cout]
    for (int64_t k = begin; k < end; k++) {
      const int64_t t0 = k * block, count = std::min(block, g.tiles() - t0);
      input_tiles(xp, g, t0, count, v);
      for (int64_t p = 0; p < kPoints; p++) {
        gemm_panels(count, g.cout, g.cin, v + p * count * g.cin, g.cin, 1, up + p * g.cin * g.cout,
                    m + p * count * g.cout, g.cout, false);
      }
      output_tiles(m, bp, relu, g, t0, count, yp);
    }
  });
  return y;
}

}  // namespace winograd
