// Training-mode BatchNorm over the union of every rank's batch (PyTorch's SyncBatchNorm), so a
// DCGAN trained on R ranks x B images computes exactly what one process computes on R*B.
//
// Forward: per-channel sum and sum of squares (float64, so E[x^2] - mean^2 keeps its digits)
// and the element count are all-reduced in one [2C + 1] buffer. Backward: with x_hat the
// normalised input, g the incoming gradient and M the global count,
//   dx = w * invstd * (g - sum_all(g) / M - x_hat * sum_all(g * x_hat) / M),
// where the two per-channel sums run over every rank (one [2C] all-reduce); dw = sum(g * x_hat)
// and db = sum(g) stay local because data-parallel training averages parameter gradients
// afterwards anyway.
#include "distributed.h"
#include "group.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// [C] -> [1, C, 1, ...] broadcastable against an input of `rank` dimensions.
at::Tensor per_channel(const at::Tensor& t, int64_t rank) {
  std::vector<int64_t> shape(rank, 1);
  shape[1] = -1;
  return t.reshape(shape);
}

std::vector<int64_t> reduce_dims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); d++) dims.push_back(d);
  return dims;
}

struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, int64_t group, at::Tensor running_mean,
                            at::Tensor running_var, double momentum, double eps) {
    auto& g = *reinterpret_cast<dd_dist::Group*>(static_cast<intptr_t>(group));
    const int64_t channels = x.size(1);
    const auto dims = reduce_dims(x);
    const at::Tensor xd = x.to(at::kDouble);
    at::Tensor stats = at::cat({xd.sum(dims), xd.square().sum(dims),
                                at::full({1}, static_cast<double>(x.numel() / channels),
                                         xd.options())});
    dd_dist::collective(g, "sync_batch_norm", [&] {
      std::vector<at::Tensor> io{stats};
      g.pg->allreduce(io)->wait();
    });
    const double count = stats[2 * channels].item<double>();
    const at::Tensor mean = stats.narrow(0, 0, channels) / count;
    const at::Tensor var = (stats.narrow(0, channels, channels) / count - mean.square()).clamp_min(0);
    const at::Tensor invstd = (var + eps).rsqrt().to(x.scalar_type());
    const at::Tensor x_hat = (x - per_channel(mean.to(x.scalar_type()), x.dim())) *
                             per_channel(invstd, x.dim());
    {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      const double unbiased = count > 1 ? count / (count - 1) : 1.0;
      running_var.mul_(1 - momentum).add_((var * unbiased).to(running_var.scalar_type()), momentum);
    }
    ctx->saved_data["group"] = group;
    ctx->saved_data["count"] = count;
    ctx->saved_data["x_hat"] = x_hat;
    ctx->saved_data["scale"] = invstd * weight;
    return x_hat * per_channel(weight, x.dim()) + per_channel(bias, x.dim());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto& g = *reinterpret_cast<dd_dist::Group*>(
        static_cast<intptr_t>(ctx->saved_data["group"].toInt()));
    const double count = ctx->saved_data["count"].toDouble();
    const at::Tensor x_hat = ctx->saved_data["x_hat"].toTensor();
    const at::Tensor scale = ctx->saved_data["scale"].toTensor();
    const at::Tensor& grad = grads[0];
    const int64_t channels = x_hat.size(1);
    const auto dims = reduce_dims(x_hat);
    const at::Tensor sum_g = grad.sum(dims, false, at::kDouble);
    const at::Tensor sum_gx = (grad.to(at::kDouble) * x_hat.to(at::kDouble)).sum(dims);
    at::Tensor sums = at::cat({sum_g, sum_gx});
    dd_dist::collective(g, "sync_batch_norm backward", [&] {
      std::vector<at::Tensor> io{sums};
      g.pg->allreduce(io)->wait();
    });
    const auto type = grad.scalar_type();
    const at::Tensor mean_g = (sums.narrow(0, 0, channels) / count).to(type);
    const at::Tensor mean_gx = (sums.narrow(0, channels, channels) / count).to(type);
    const int64_t rank = x_hat.dim();
    const at::Tensor dx = (grad - per_channel(mean_g, rank) - x_hat * per_channel(mean_gx, rank)) *
                          per_channel(scale, rank);
    return {dx, sum_gx.to(type), sum_g.to(type), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" int32_t dd_dist_sync_batch_norm(dd_group group, dd_tensor x, dd_tensor weight,
                                           dd_tensor bias, dd_tensor running_mean,
                                           dd_tensor running_var, double momentum, double eps,
                                           dd_out* out) {
  try {
    const at::Tensor& input = *static_cast<at::Tensor*>(x);
    if (input.dim() < 2) return dd_dist::fail("sync_batch_norm: input needs at least 2 dimensions");
    const int64_t channels = input.size(1);
    const auto options = input.options().requires_grad(false);
    const at::Tensor w = weight ? *static_cast<at::Tensor*>(weight) : at::ones({channels}, options);
    const at::Tensor b = bias ? *static_cast<at::Tensor*>(bias) : at::zeros({channels}, options);
    at::Tensor result = SyncBatchNorm::apply(
        input, w, b, static_cast<int64_t>(reinterpret_cast<intptr_t>(group)),
        *static_cast<at::Tensor*>(running_mean), *static_cast<at::Tensor*>(running_var), momentum,
        eps);
    // The handle is made by the shim's own dd_reshape (a view, no copy), so the shim's
    // live-handle count and dtype rules cover it like any other result.
    std::vector<int64_t> sizes(result.sizes().begin(), result.sizes().end());
    if (dd_reshape(&result, sizes.data(), static_cast<int32_t>(sizes.size()), out) != 0) {
      return dd_dist::fail(std::string("sync_batch_norm: ") + dd_last_error());
    }
    return 0;
  } catch (const std::exception& e) {
    return dd_dist::fail(std::string("sync_batch_norm: ") + e.what());
  }
}
