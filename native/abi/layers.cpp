// deno-diffusion native shim, second half of the C entry points: layers, losses, autograd,
// optimisation and host linear algebra. See shim.h for the conventions.
#include "common.h"

#include "../ops/attention.h"
#include "../ops/conv.h"
#include "../ops/deconv.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace dd::abi;
using dd::ops::conv2d_forward;
using dd::ops::conv_layout;

extern "C" {

// ---- layers ----

int32_t dd_matmul(dd_tensor a, dd_tensor b, dd_out* out) {
  DD_TRY
  return emit(at::matmul(T(a), T(b)), out);
  DD_CATCH
}

int32_t dd_linear(dd_tensor x, dd_tensor w, dd_tensor b, dd_out* out) {
  DD_TRY
  return emit(at::linear(T(x), T(w), opt(b)), out);
  DD_CATCH
}


int32_t dd_conv2d(dd_tensor x, dd_tensor w, dd_tensor b, int32_t stride, int32_t pad_h,
                  int32_t pad_w, int32_t activation, dd_out* out) {
  DD_TRY
  if (activation != DD_ACT_NONE && activation != DD_ACT_RELU) {
    set_error(("conv2d: unknown activation code " + std::to_string(activation)).c_str());
    return 1;
  }
  return emit(conv2d_forward(T(x), T(w), opt(b), stride, pad_h, pad_w,
                             activation == DD_ACT_RELU),
              out);
  DD_CATCH
}

int32_t dd_conv_transpose2d(dd_tensor x, dd_tensor w, dd_tensor b, int32_t stride,
                            int32_t padding, int32_t output_padding, dd_out* out) {
  DD_TRY
  if (deconv::applies(T(x), T(w), stride, output_padding)) {
    at::Tensor y = deconv::apply(conv_layout(T(x)), conv_layout(T(w)), stride, padding,
                                           output_padding);
    if (b != nullptr) y = y + T(b).view({1, -1, 1, 1});
    return emit(y, out);
  }
  return emit(at::conv_transpose2d(conv_layout(T(x)), conv_layout(T(w)), opt(b), {stride, stride},
                                   {padding, padding}, {output_padding, output_padding}),
              out);
  DD_CATCH
}

int32_t dd_group_norm(dd_tensor x, int32_t groups, dd_tensor w, dd_tensor b, double eps,
                      dd_out* out) {
  DD_TRY
  return emit(at::group_norm(T(x), groups, opt(w), opt(b), eps), out);
  DD_CATCH
}

int32_t dd_layer_norm(dd_tensor x, dd_tensor w, dd_tensor b, double eps, dd_out* out) {
  DD_TRY
  const at::Tensor& t = T(x);
  if (t.dim() < 1) {
    set_error("layerNorm: input has no dimensions");
    return 1;
  }
  return emit(at::layer_norm(t, {t.size(-1)}, opt(w), opt(b), eps), out);
  DD_CATCH
}

int32_t dd_batch_norm(dd_tensor x, dd_tensor w, dd_tensor b, dd_tensor running_mean,
                      dd_tensor running_var, int32_t training, double momentum, double eps,
                      dd_out* out) {
  DD_TRY
  // at::batch_norm updates running_mean/var in place in training mode (unbiased variance).
  return emit(at::batch_norm(T(x), opt(w), opt(b), T(running_mean), T(running_var), training != 0,
                             momentum, eps, /*cudnn_enabled=*/true),
              out);
  DD_CATCH
}

int32_t dd_max_pool2d(dd_tensor x, int32_t kernel, int32_t stride, int32_t padding, dd_out* out) {
  DD_TRY
  return emit(at::max_pool2d(T(x), {kernel, kernel}, {stride, stride}, {padding, padding}), out);
  DD_CATCH
}

int32_t dd_avg_pool2d(dd_tensor x, int32_t kernel, int32_t stride, int32_t padding,
                      int32_t count_include_pad, dd_out* out) {
  DD_TRY
  return emit(at::avg_pool2d(T(x), {kernel, kernel}, {stride, stride}, {padding, padding},
                             /*ceil_mode=*/false, count_include_pad != 0),
              out);
  DD_CATCH
}

int32_t dd_interpolate_bilinear(dd_tensor x, int32_t height, int32_t width, int32_t align_corners,
                                dd_out* out) {
  DD_TRY
  const at::Tensor& t = T(x);
  if (t.dim() != 4) {
    set_error("interpolateBilinear: expected a 4-d [N, C, H, W] input");
    return 1;
  }
  return emit(at::upsample_bilinear2d(t, {height, width}, align_corners != 0), out);
  DD_CATCH
}

int32_t dd_attention(dd_tensor q, dd_tensor k, dd_tensor v, dd_out* out) {
  DD_TRY
  const at::Tensor& Q = T(q);
  const at::Tensor& K = T(k);
  const at::Tensor& V = T(v);
  if (Q.dim() < 2 || K.dim() != Q.dim() || V.dim() != Q.dim()) {
    set_error("attention: q, k, v must have the same rank >= 2");
    return 1;
  }
  // CPU float32: the blocked kernel above (no [L, L] matrix in memory).
  if (attn::applies(Q, K, V)) return emit(attn::attention(Q, K, V), out);
#if DD_TORCH_AT_LEAST(2, 0)
  return emit(at::scaled_dot_product_attention(Q, K, V), out);
#else
  // softmax(q k^T / sqrt(d)) v  (Vaswani et al. 2017, eq. 1)
  double scale = 1.0 / std::sqrt(static_cast<double>(Q.size(-1)));
  at::Tensor weights = at::softmax(at::matmul(Q, K.transpose(-2, -1)) * scale, -1);
  return emit(at::matmul(weights, V), out);
#endif
  DD_CATCH
}

int32_t dd_mse_loss(dd_tensor pred, dd_tensor target, dd_out* out) {
  DD_TRY
  if (!T(pred).sizes().equals(T(target).sizes())) {
    set_error("mseLoss: prediction and target shapes differ");
    return 1;
  }
  return emit(at::mse_loss(T(pred), T(target)), out);
  DD_CATCH
}

int32_t dd_bce_with_logits(dd_tensor logits, dd_tensor targets, dd_out* out) {
  DD_TRY
  if (!T(logits).sizes().equals(T(targets).sizes())) {
    set_error("bceWithLogits: logits and targets shapes differ");
    return 1;
  }
  return emit(at::binary_cross_entropy_with_logits(T(logits), T(targets)), out);
  DD_CATCH
}

// ---- autograd and optimisation ----

int32_t dd_grad(dd_tensor loss, const int64_t* params, int32_t n, int64_t* grads_out) {
  DD_TRY
  const at::Tensor& L = T(loss);
  if (L.numel() != 1) {
    set_error("valueAndGrad: the loss must be a scalar");
    return 1;
  }
  std::vector<at::Tensor> inputs;
  inputs.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; i++) inputs.push_back(T(params[i]));
  // A loss that uses none of the parameters has no graph: every gradient is zero.
  std::vector<at::Tensor> grads(static_cast<size_t>(n));
  if (L.requires_grad() && n > 0) {
    grads = torch::autograd::grad({L.reshape({})}, inputs, /*grad_outputs=*/{},
                                  /*retain_graph=*/false, /*create_graph=*/false,
                                  /*allow_unused=*/true);
  }
  for (int32_t i = 0; i < n; i++) {
    at::Tensor g = grads[static_cast<size_t>(i)].defined() ? grads[static_cast<size_t>(i)]
                                                         : at::zeros_like(inputs[static_cast<size_t>(i)]);
    grads_out[i] = static_cast<int64_t>(reinterpret_cast<intptr_t>(new at::Tensor(g.detach())));
    g_live++;
  }
  return 0;
  DD_CATCH
}

int32_t dd_adam_step(const int64_t* params, const int64_t* grads, const int64_t* m,
                     const int64_t* v, int32_t n, int32_t step, double lr, double beta1,
                     double beta2, double eps, double weight_decay) {
  DD_TRY
  at::NoGradGuard no_grad;
  // Kingma & Ba 2015, Algorithm 1, with Loshchilov & Hutter 2019's decoupled decay (AdamW),
  // in torch.optim.AdamW's order: decay, moments, bias-corrected update.
  const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const double step_size = lr / bias1;
  const double bias2_sqrt = std::sqrt(bias2);
  for (int32_t i = 0; i < n; i++) {
    at::Tensor& p = T(params[i]);
    const at::Tensor& g = T(grads[i]);
    at::Tensor& mi = T(m[i]);
    at::Tensor& vi = T(v[i]);
    if (weight_decay != 0) p.mul_(1.0 - lr * weight_decay);
    mi.mul_(beta1).add_(g, 1.0 - beta1);
    vi.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
    at::Tensor denom = (vi.sqrt() / bias2_sqrt).add_(eps);
    p.addcdiv_(mi, denom, -step_size);
  }
  return 0;
  DD_CATCH
}

int32_t dd_ema_update(const int64_t* targets, const int64_t* sources, int32_t n, double decay) {
  DD_TRY
  at::NoGradGuard no_grad;
  for (int32_t i = 0; i < n; i++) {
    // target + (1 - decay) * (source - target) == decay * target + (1 - decay) * source
    T(targets[i]).lerp_(T(sources[i]), 1.0 - decay);
  }
  return 0;
  DD_CATCH
}

// ---- host linear algebra ----

int32_t dd_eigh_f64(const double* a, int32_t n, double* values, double* vectors) {
  DD_TRY
  at::NoGradGuard no_grad;
  at::Tensor A = at::from_blob(const_cast<double*>(a), {n, n}, at::TensorOptions().dtype(at::kDouble));
  auto result = at::linalg_eigh(A, "L");
  at::Tensor w = std::get<0>(result).contiguous();
  at::Tensor Q = std::get<1>(result).contiguous();
  std::memcpy(values, w.data_ptr<double>(), static_cast<size_t>(n) * sizeof(double));
  std::memcpy(vectors, Q.data_ptr<double>(), static_cast<size_t>(n * n) * sizeof(double));
  return 0;
  DD_CATCH
}

// Values only: LAPACK syevd without vectors ends in the QR iteration (dsterf), which keeps the
// small eigenvalues of a graded matrix (large entries first) to high relative accuracy; the
// divide and conquer that eigh uses for the vectors does not (7e-9 off at FID's N = 2048).
int32_t dd_eigvalsh_f64(const double* a, int32_t n, double* values) {
  DD_TRY
  at::NoGradGuard no_grad;
  at::Tensor A = at::from_blob(const_cast<double*>(a), {n, n}, at::TensorOptions().dtype(at::kDouble));
  at::Tensor w = at::linalg_eigvalsh(A, "L").contiguous();
  std::memcpy(values, w.data_ptr<double>(), static_cast<size_t>(n) * sizeof(double));
  return 0;
  DD_CATCH
}

}  // extern "C"
