// Convolution glue: which kernel runs a conv2d, and the memory layout oneDNN prefers.
#pragma once

#include <ATen/ATen.h>

namespace dd::ops {

// t in channels_last when it is a 4-d CPU tensor, else t itself.
at::Tensor conv_layout(const at::Tensor& t);

// relu?(conv2d(x, w) + b) with rectangular padding (pad_h, pad_w), on the fastest kernel that
// applies (kernels/README.md says which and when).
at::Tensor conv2d_forward(const at::Tensor& x, const at::Tensor& w,
                          const c10::optional<at::Tensor>& b, int64_t stride, int64_t pad_h,
                          int64_t pad_w, bool relu);

}  // namespace dd::ops
