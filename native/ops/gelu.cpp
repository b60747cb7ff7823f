// Autograd glue for GELU on libtorch 1.13 (moved from shim.cpp unchanged).
#include "gelu.h"

#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

namespace dd::ops {
namespace {

// GELU whose backward gets grad_output in x's memory layout. libtorch 1.13's CPU gelu_backward
// returns wrong values (up to uninitialised memory) when grad_output's strides differ from x's,
// e.g. x contiguous and grad channels_last coming back from a oneDNN conv; making them agree
// before the stock kernel runs keeps its speed and fixes the result.
struct LayoutSafeGelu : public torch::autograd::Function<LayoutSafeGelu> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->save_for_backward({x});
    return at::gelu(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor grad = grads[0].contiguous(x.suggest_memory_format());
    return {at::gelu_backward(grad, x.contiguous(x.suggest_memory_format()))};
  }
};

}  // namespace

at::Tensor layout_safe_gelu(const at::Tensor& x) {
  if (!c10::GradMode::is_enabled() || !x.requires_grad()) return at::gelu(x);
  return LayoutSafeGelu::apply(x);
}

}  // namespace dd::ops
