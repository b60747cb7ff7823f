// Winograd convolutions for CPU float32 (Lavin & Gray 2016): F(4x4, 3x3) with gradients and
// F(2x2, 5x5) forward (winograd.cpp), F(6x6, 3x3) forward (winograd_f6.cpp), and F(4, k) or
// F(6, k) along one axis for 1xk / kx1 kernels, forward only (winograd_line.cpp).
#pragma once

#include <ATen/ATen.h>

namespace winograd {

// x [N, C, H, W] itself when its elements lie as channels_last with consecutive pixels some
// P >= C floats apart (channels_last itself, or a channel slice of it: Inception's 1x1 heads run
// as one conv whose slices feed the branches), else a channels_last copy.
at::Tensor pixel_major(const at::Tensor& x);

// False when DENO_DIFFUSION_WINOGRAD=0 or the CPU lacks AVX2+FMA: every conv then runs in ATen.
bool enabled();

// Whether conv2d(x, w, b) records a gradient: grad mode on and any of them requires it.
bool records_grad(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b);

// Whether conv2d(x, w, b, stride, padding) runs here: CPU float32 x [N, Cin, H, W] and
// w [Cout, Cin, 3, 3], or w [Cout, Cin, 5, 5] with no gradient to record; stride 1, padding
// below the kernel side per axis, Cin and Cout multiples of 8, an AVX2+FMA CPU, and enabled().
bool applies(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
             int64_t stride, int64_t pad_h, int64_t pad_w);

// relu?(conv2d(x, w) + b) -> [N, Cout, Ho, Wo] in channels_last. 3x3: differentiable in x, w and
// b when grad mode is on (the ReLU then runs as a separate op); without gradients, F(6x6, 3x3)
// where prefers_f6().
at::Tensor conv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                  int64_t pad_h, int64_t pad_w, bool relu);

// Whether F(6x6, 3x3) beats F(4x4, 3x3) for Cin input channels and this output size: 6x6
// tiles take fewer matrix products, and the products dominate.
bool prefers_f6(int64_t cin, int64_t out_h, int64_t out_w);

// relu?(conv2d(x, w) + b) for a 3x3 kernel, as F(6x6, 3x3), without gradients: for applies()
// cases.
at::Tensor conv2d_f6(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                     int64_t pad_h, int64_t pad_w, bool relu);

// Whether conv2d(x, w, stride, padding) is a 1xk or kx1 convolution (k = 3, 5, 7) that
// conv2d_line runs: CPU float32, stride 1, padding only along the kernel's axis, channels
// multiples of 8, enabled(), and no gradient to record (grad mode off or nothing requires it).
bool applies_line(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                  int64_t stride, int64_t pad_h, int64_t pad_w);

// relu?(conv2d(x, w) + b) -> [N, Cout, Ho, Wo] in channels_last, for applies_line() cases.
at::Tensor conv2d_line(const at::Tensor& x, const at::Tensor& w,
                       const c10::optional<at::Tensor>& b, int64_t pad_h, int64_t pad_w,
                       bool relu);

}  // namespace winograd
