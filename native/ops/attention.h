// Blocked scaled-dot-product attention for CPU float32 (see attention.cpp).
#pragma once

#include <ATen/ATen.h>

namespace attn {

// Whether the blocked kernel applies: CPU float32 q [..., Lq, d], k and v [..., Lk, d].
bool applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// softmax(q k^T / sqrt(d)) v for q [..., Lq, d], k/v [..., Lk, d]; differentiable.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace attn
