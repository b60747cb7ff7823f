// Transposed convolution as an autograd function (moved from shim.cpp unchanged).
#include "deconv.h"

#include <torch/csrc/autograd/custom_function.h>

// ---- transposed convolution through oneDNN (CPU, float32) ----
//
// libtorch 1.13 runs conv_transpose2d on the CPU as im2col + GEMM (slow_conv_transpose2d),
// 2-5x slower than oneDNN's convolution. A transposed convolution is the input-gradient of the
// convolution with the same weight, so forward and backward here are all oneDNN convolutions:
// y = A_w^T x (A_w: conv2d with weight w) -> dx = A_w dy, dw = conv weight-gradient(dy, x).
namespace deconv {

class Function : public torch::autograd::Function<Function> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w, int64_t stride, int64_t padding,
                            int64_t output_padding) {
    ctx->save_for_backward({x, w});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    // [N, Cout, Ho, Wo], Ho = (H - 1) s - 2p + k + output_padding: only its shape is read.
    auto side = [&](int64_t in, int64_t k) {
      return (in - 1) * stride - 2 * padding + k + output_padding;
    };
    at::Tensor shape =
        at::empty({x.size(0), w.size(1), side(x.size(2), w.size(2)), side(x.size(3), w.size(3))},
                  x.options().memory_format(at::MemoryFormat::ChannelsLast));
    return std::get<0>(at::convolution_backward(x, shape, w, c10::nullopt, {stride, stride},
                                                {padding, padding}, {1, 1}, false, {0, 0}, 1,
                                                {true, false, false}));
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    at::Tensor gy = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor gx = at::conv2d(gy, w, {}, {stride, stride}, {padding, padding});
    at::Tensor gw = std::get<1>(at::convolution_backward(x, gy, w, c10::nullopt, {stride, stride},
                                                         {padding, padding}, {1, 1}, false, {0, 0},
                                                         1, {false, true, false}));
    return {gx, gw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool applies(const at::Tensor& x, const at::Tensor& w, int32_t stride, int32_t output_padding) {
  return x.is_cpu() && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
         x.dim() == 4 && w.dim() == 4 && x.size(1) == w.size(0) && output_padding >= 0 &&
         output_padding < stride && at::globalContext().userEnabledMkldnn();
}

at::Tensor apply(const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                 int64_t output_padding) {
  return Function::apply(x, w, stride, padding, output_padding);
}

}  // namespace deconv
