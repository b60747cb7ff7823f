// Strided convolutions as an implicit matrix product on the CPU (conv_direct.cpp).
#pragma once

#include <ATen/ATen.h>

namespace direct {

// Whether conv2d(x, w, b, stride, padding) runs in conv2d_strided: CPU float32 x [N, Cin, H, W]
// and w [Cout, Cin, kh, kw], stride 2 or more, Cin and Cout multiples of 8, an AVX2+FMA CPU,
// winograd::enabled() (DENO_DIFFUSION_WINOGRAD=0 turns this off too), no gradient to record.
bool applies(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
             int64_t stride, int64_t pad_h, int64_t pad_w);

// relu?(conv2d(x, w, stride, padding) + b) -> [N, Cout, Ho, Wo] in channels_last.
at::Tensor conv2d_strided(const at::Tensor& x, const at::Tensor& w,
                          const c10::optional<at::Tensor>& b, int64_t stride, int64_t pad_h,
                          int64_t pad_w, bool relu);

}  // namespace direct
