// GELU with a layout-safe backward (see gelu.cpp).
#pragma once

#include <ATen/ATen.h>

namespace dd::ops {

// at::gelu, differentiable; the backward sees grad_output in x's memory layout.
at::Tensor layout_safe_gelu(const at::Tensor& x);

}  // namespace dd::ops
