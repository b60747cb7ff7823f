// Convolution glue (moved from shim.cpp unchanged): picks Winograd, the direct strided kernel
// or ATen for each conv2d call.
#include "conv.h"

#include <c10/core/GradMode.h>

#include "../kernels/conv_direct.h"
#include "../kernels/winograd.h"

namespace dd::ops {

// oneDNN convolutions on CPU are 2-2.5x faster with channels_last activations and weights.
at::Tensor conv_layout(const at::Tensor& t) {
  if (t.is_cpu() && t.dim() == 4) return t.contiguous(at::MemoryFormat::ChannelsLast);
  return t;
}

// relu?(conv2d(x, w) + b): Winograd for stride-1 3x3 (and, without gradients, 5x5, 1xk and kx1)
// CPU convs, without gradients an implicit matrix product for strided ones, else ATen (oneDNN on
// CPU).
at::Tensor conv2d_forward(const at::Tensor& x, const at::Tensor& w,
                          const c10::optional<at::Tensor>& b, int64_t stride, int64_t pad_h,
                          int64_t pad_w, bool relu) {
  if (winograd::applies(x, w, b, stride, pad_h, pad_w)) {
    return winograd::conv2d(x, w, b, pad_h, pad_w, relu);
  }
  if (winograd::applies_line(x, w, b, stride, pad_h, pad_w)) {
    return winograd::conv2d_line(x, w, b, pad_h, pad_w, relu);
  }
  if (direct::applies(x, w, b, stride, pad_h, pad_w)) {
    return direct::conv2d_strided(x, w, b, stride, pad_h, pad_w, relu);
  }
  at::Tensor y = at::conv2d(conv_layout(x), conv_layout(w), b, {stride, stride}, {pad_h, pad_w});
  if (!relu) return y;
  return c10::GradMode::is_enabled() ? at::relu(y) : at::relu_(y);
}

}  // namespace dd::ops
