// Transposed convolution through oneDNN convolutions (see deconv.cpp).
#pragma once

#include <ATen/ATen.h>

namespace deconv {

// Whether the oneDNN path applies (CPU float32, 4-d, channels agree, 0 <= output_padding < stride).
bool applies(const at::Tensor& x, const at::Tensor& w, int32_t stride, int32_t output_padding);

// conv_transpose2d(x, w) without bias, differentiable in x and w.
at::Tensor apply(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                 int64_t output_padding);

}  // namespace deconv
