// Fused attention as an autograd function (moved from shim.cpp unchanged).
#include "attention.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernels/blas.h"

// ---- fused attention (CPU, float32) ----
//
// softmax(q k^T / sqrt(d)) v (Vaswani et al. 2017, eq. 1) computed block by block, so the
// [L, L] score matrix never exists in full: each block of query rows is scored, normalised
// and multiplied by v while it is still in cache, and the backward pass recomputes the block's
// probabilities from q and k (the recomputation of FlashAttention, Dao et al. 2022) instead of
// storing them. At L = 1024 (the U-Net's 32x32 level) this avoids writing and re-reading
// gigabytes per step; blocks are independent, so (batch x head) slices run in parallel.
namespace attn {

// Query rows per block, and (batch x head) slices per block: ~1 MiB of scores per block.
struct Blocking {
  int64_t rows;
  int64_t slices;
};
Blocking blocking(int64_t lq, int64_t lk) {
  const int64_t budget = 256 * 1024;  // floats
  int64_t rows = std::min<int64_t>(lq, std::max<int64_t>(16, budget / std::max<int64_t>(lk, 1)));
  int64_t slices = rows < lq ? 1 : std::max<int64_t>(1, budget / std::max<int64_t>(rows * lk, 1));
  return {rows, slices};
}

// Runs fn(b0, nb, r0, nr) over every block, blocks of one slice group on one thread.
template <typename Fn>
void for_each_block(int64_t bh, int64_t lq, int64_t lk, const Fn& fn) {
  const Blocking blk = blocking(lq, lk);
  dd::SingleThreadedBlas single;
  at::parallel_for(0, (bh + blk.slices - 1) / blk.slices, 1, [&](int64_t begin, int64_t end) {
    at::NoGradGuard no_grad;
    for (int64_t g = begin; g < end; g++) {
      const int64_t b0 = g * blk.slices, nb = std::min(blk.slices, bh - b0);
      for (int64_t r0 = 0; r0 < lq; r0 += blk.rows) fn(b0, nb, r0, std::min(blk.rows, lq - r0));
    }
  });
}

// Rows [r0, r0 + nr) of slices [b0, b0 + nb) of a [BH, L, d] tensor.
at::Tensor block(const at::Tensor& t, int64_t b0, int64_t nb, int64_t r0, int64_t nr) {
  return t.narrow(0, b0, nb).narrow(1, r0, nr);
}

// q (already scaled by 1/sqrt(d)) [BH, Lq, d], k/v [BH, Lk, d], contiguous -> [BH, Lq, d].
at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor out = at::empty_like(q);
  for_each_block(q.size(0), q.size(1), k.size(1), [&](int64_t b0, int64_t nb, int64_t r0,
                                                       int64_t nr) {
    at::Tensor kt = k.narrow(0, b0, nb).transpose(1, 2);
    at::Tensor p = at::softmax(at::bmm(block(q, b0, nb, r0, nr), kt), -1);  // [nb, nr, Lk]
    at::Tensor o = block(out, b0, nb, r0, nr);
    at::bmm_out(o, p, v.narrow(0, b0, nb));
  });
  return out;
}

// Gradients of forward() given d out: {dq (w.r.t. the scaled q), dk, dv}.
std::vector<at::Tensor> backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& out, const at::Tensor& gout) {
  at::Tensor gq = at::empty_like(q), gk = at::zeros_like(k), gv = at::zeros_like(v);
  // D_i = sum_j dO_ij O_ij = sum_j P_ij dP_ij: the row term of the softmax Jacobian.
  at::Tensor delta = (gout * out).sum(-1, /*keepdim=*/true);  // [BH, Lq, 1]
  for_each_block(q.size(0), q.size(1), k.size(1), [&](int64_t b0, int64_t nb, int64_t r0,
                                                       int64_t nr) {
    at::Tensor qc = block(q, b0, nb, r0, nr), goc = block(gout, b0, nb, r0, nr);
    at::Tensor kb = k.narrow(0, b0, nb), vb = v.narrow(0, b0, nb);
    at::Tensor p = at::softmax(at::bmm(qc, kb.transpose(1, 2)), -1);  // P, recomputed
    gv.narrow(0, b0, nb).baddbmm_(p.transpose(1, 2), goc);             // dV += P^T dO
    at::Tensor ds = at::bmm(goc, vb.transpose(1, 2))                   // dP = dO V^T
                        .sub_(block(delta, b0, nb, r0, nr))
                        .mul_(p);                                      // dS = P (dP - D)
    at::Tensor gqc = block(gq, b0, nb, r0, nr);
    at::bmm_out(gqc, ds, kb);                                          // dQ = dS K
    gk.narrow(0, b0, nb).baddbmm_(ds.transpose(1, 2), qc);             // dK += dS^T Q
  });
  return {gq, gk, gv};
}

class Function : public torch::autograd::Function<Function> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                            const at::Tensor& k, const at::Tensor& v) {
    at::Tensor out = attn::forward(q, k, v);
    ctx->save_for_backward({q, k, v, out});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    return attn::backward(saved[0], saved[1], saved[2], saved[3], grads[0].contiguous());
  }
};

// Whether the blocked kernel applies: CPU float32 q [..., Lq, d], k and v [..., Lk, d].
bool applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t n = q.dim();
  return q.is_cpu() && q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat &&
         v.scalar_type() == at::kFloat && n >= 3 && k.dim() == n && k.sizes().equals(v.sizes()) &&
         q.size(-1) == k.size(-1) && q.sizes().slice(0, n - 2).equals(k.sizes().slice(0, n - 2));
}

// softmax(q k^T / sqrt(d)) v for q [..., Lq, d], k/v [..., Lk, d]; differentiable.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  auto flat = [](const at::Tensor& t) {
    return t.reshape({-1, t.size(-2), t.size(-1)}).contiguous();  // [BH, L, d]
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor out = Function::apply(flat(q * scale), flat(k), flat(v));
  return out.view(q.sizes());
}

}  // namespace attn
