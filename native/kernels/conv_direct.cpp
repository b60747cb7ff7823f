// Strided convolutions (stride >= 2) as an implicit matrix product, CPU float32, channels_last,
// forward only: the downsampling convolutions of FID's Inception (3x3 stride 2, 288->384 alone is
// a tenth of its time) and of the U-Nets when sampling. oneDNN 2.x (libtorch 1.13) ran these at
// 59-107 GFLOP/s on two cores here, against ~150 for its own stride-1 1x1 convolutions.
//
// No im2col buffer: in channels_last the kw * Cin inputs under one kernel row for output pixel
// ox lie contiguously at x[iy, ox * s, :], and consecutive output pixels are s * Cin apart. So
// kernel row ky is one product [Wo, kw * Cin] x [kw * Cin, Cout] read straight from the input
// with row stride s * Cin, and the kh products accumulate into an output row that starts as the
// bias. The products run in the panel kernel (panel_gemm.h) on weights packed once per call.
#include "conv_direct.h"

#include <ATen/Parallel.h>

#include "panel_gemm.h"
#include "winograd.h"

namespace direct {
namespace {

using dd::kLanes;
using dd::kPanel;

// Input (already padded) [N, H, W, Cin] -> output [N, Ho, Wo, Cout], both NHWC.
struct Geometry {
  int64_t n, h, w, cin, cout, kh, kw, stride;
  int64_t out_h() const { return (h - kh) / stride + 1; }
  int64_t out_w() const { return (w - kw) / stride + 1; }
  int64_t row_k() const { return kw * cin; }  // inner dimension of one kernel row's product
};

// Output rows per block of work: the block's output and the input rows under it should stay in
// the core's L2 while every column panel of the weights passes over them.
int64_t rows_per_block(const Geometry& g) {
  constexpr int64_t kBudgetFloats = 32 * 1024;  // 128 KiB of the 512 KiB L2
  const int64_t out_row = g.out_w() * g.cout, in_rows = g.stride * g.w * g.cin;
  return std::max<int64_t>(1, std::min(g.out_h(), kBudgetFloats / (out_row + in_rows)));
}

// w [Cout, Cin, kh, kw] -> [kh, kw * Cin, Cout] in column panels; row index kx * Cin + ci.
// Written in order, panel by panel, as the Winograd weight transforms.
at::Tensor pack_weight(const at::Tensor& weight) {
  const at::Tensor w = weight.contiguous();
  const int64_t cout = w.size(0), cin = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t k = kw * cin;
  at::Tensor packed = at::empty({kh, k, cout}, w.options());
  const float* src = w.data_ptr<float>();
  float* dst = packed.data_ptr<float>();
  const int64_t panels = (cout + kPanel - 1) / kPanel;
  at::parallel_for(0, kh * panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      const int64_t ky = b / panels, co0 = (b % panels) * kPanel;
      const int64_t width = dd::panel_width(cout, co0);
      float* out = dst + ky * k * cout + dd::panel_offset(k, cout, 0, co0);
      for (int64_t kx = 0; kx < kw; kx++) {
        for (int64_t ci = 0; ci < cin; ci++) {
          for (int64_t c = 0; c < width; c++) {
            *out++ = src[(((co0 + c) * cin + ci) * kh + ky) * kw + kx];
          }
        }
      }
    }
  });
  return packed;
}

#if DD_X86

// out [pixels, Cout] = bias (or zero).
DD_AVX2 void fill_bias(float* out, int64_t pixels, int64_t cout, const float* bias) {
  for (int64_t p = 0; p < pixels; p++) {
    for (int64_t c = 0; c < cout; c += kLanes) {
      _mm256_storeu_ps(out + p * cout + c, bias ? _mm256_loadu_ps(bias + c) : _mm256_setzero_ps());
    }
  }
}

DD_AVX2 void relu_inplace(float* out, int64_t count) {
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < count; i += kLanes) {
    _mm256_storeu_ps(out + i, _mm256_max_ps(_mm256_loadu_ps(out + i), zero));
  }
}

void run(const float* x, const float* packed, const float* bias, bool relu, const Geometry& g,
         float* y) {
  const int64_t oh = g.out_h(), ow = g.out_w(), k = g.row_k();
  const int64_t rows = rows_per_block(g), blocks_per_image = (oh + rows - 1) / rows;
  at::parallel_for(0, g.n * blocks_per_image, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      const int64_t n = b / blocks_per_image, oy0 = (b % blocks_per_image) * rows;
      const int64_t count = std::min(rows, oh - oy0);
      float* out = y + (n * oh + oy0) * ow * g.cout;  // [count, Wo, Cout]
      fill_bias(out, count * ow, g.cout, bias);
      for (int64_t ky = 0; ky < g.kh; ky++) {
        const float* weights = packed + ky * k * g.cout;  // [kw * Cin, Cout] panels
        for (int64_t j = 0; j < g.cout; j += kPanel) {
          const int64_t width = std::min(kPanel, g.cout - j);
          for (int64_t r = 0; r < count; r++) {
            const int64_t iy = (oy0 + r) * g.stride + ky;
            const float* a = x + (n * g.h + iy) * g.w * g.cin;  // pixel ox at a + ox * s * Cin
            dd::gemm_panels(ow, width, k, a, g.stride * g.cin, 1, weights + j * k,
                            out + r * ow * g.cout + j, g.cout, true);
          }
        }
      }
      if (relu) relu_inplace(out, count * ow * g.cout);
    }
  });
}

#else

void run(const float*, const float*, const float*, bool, const Geometry&, float*) {}

#endif

}  // namespace

bool applies(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
             int64_t stride, int64_t pad_h, int64_t pad_w) {
  if (!winograd::enabled()) return false;
  if (!x.is_cpu() || !w.is_cpu() || x.scalar_type() != at::kFloat ||
      w.scalar_type() != at::kFloat || x.dim() != 4 || w.dim() != 4) {
    return false;
  }
  // Three input channels (an RGB input layer) make products too short for the panel kernel:
  // oneDNN was faster there.
  return !winograd::records_grad(x, w, b) && stride >= 2 && w.size(1) == x.size(1) &&
         x.size(1) % kLanes == 0 && w.size(0) % kLanes == 0 &&
         pad_h >= 0 && pad_w >= 0 && x.size(0) > 0 && x.size(2) + 2 * pad_h >= w.size(2) &&
         x.size(3) + 2 * pad_w >= w.size(3);
}

at::Tensor conv2d_strided(const at::Tensor& input, const at::Tensor& w,
                          const c10::optional<at::Tensor>& b, int64_t stride, int64_t pad_h,
                          int64_t pad_w, bool relu) {
  at::Tensor x = input;
  if (pad_h > 0 || pad_w > 0) x = at::constant_pad_nd(x, {pad_w, pad_w, pad_h, pad_h});
  x = x.contiguous(at::MemoryFormat::ChannelsLast);
  const Geometry g{x.size(0), x.size(2), x.size(3), x.size(1), w.size(0), w.size(2), w.size(3),
                   stride};
  at::Tensor y = at::empty({g.n, g.cout, g.out_h(), g.out_w()},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const at::Tensor packed = pack_weight(w);
  const at::Tensor bias = b ? b->contiguous() : at::Tensor();
  run(x.data_ptr<float>(), packed.data_ptr<float>(), b ? bias.data_ptr<float>() : nullptr, relu,
      g, y.data_ptr<float>());
  return y;
}

}  // namespace direct
