// deno-diffusion native shim: extern "C" over ATen. See shim.h for the conventions.
// Builds against libtorch 1.13 (Debian, CPU) and 2.x (PyTorch wheels/zips, CUDA); version gaps
// are handled with #if on TORCH_VERSION_MAJOR/MINOR.
#include "shim.h"

#include "blas.h"
#include "conv_direct.h"
#include "cpu_allocator.h"
#include "winograd.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#define DD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||     \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace {

thread_local std::string g_error;
std::string g_cpu_name = "cpu";
std::string g_cuda_name = "cuda";
// Per thread: Deno runs each test module (worker) on its own thread in one process, and each
// worker's handles are created and freed on that thread.
thread_local int64_t g_live = 0;

void set_error(const char* msg) { g_error = msg ? msg : "unknown error"; }

at::Tensor& T(dd_tensor h) { return *static_cast<at::Tensor*>(h); }
at::Tensor& T(int64_t h) { return *reinterpret_cast<at::Tensor*>(static_cast<intptr_t>(h)); }

// Optional tensor argument: NULL means "absent".
c10::optional<at::Tensor> opt(dd_tensor h) {
  if (h == nullptr) return c10::nullopt;
  return T(h);
}

at::Device device_for(int32_t use_cuda) { return use_cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU); }

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

at::Tensor layout_safe_gelu(const at::Tensor& x) {
  if (!c10::GradMode::is_enabled() || !x.requires_grad()) return at::gelu(x);
  return LayoutSafeGelu::apply(x);
}

// oneDNN convolutions on CPU are 2-2.5x faster with channels_last activations and weights.
at::Tensor conv_layout(const at::Tensor& t) {
  if (t.is_cpu() && t.dim() == 4) return t.contiguous(at::MemoryFormat::ChannelsLast);
  return t;
}

// Results are float32 or int32 at the interface; anything else (bool, int64, bf16) converts.
at::Tensor normalize_dtype(at::Tensor t) {
  switch (t.scalar_type()) {
    case at::kFloat:
    case at::kInt:
      return t;
    case at::kBFloat16:
    case at::kHalf:
      return t;  // autocast results stay low precision on the device; read() converts
    case at::kLong:
    case at::kShort:
    case at::kChar:
    case at::kByte:
      return t.to(at::kInt);
    default:
      return t.to(at::kFloat);
  }
}

int64_t dtype_code(const at::Tensor& t) { return t.scalar_type() == at::kInt ? DD_INT32 : DD_FLOAT32; }

int emit(at::Tensor t, dd_out* out) {
  t = normalize_dtype(std::move(t));
  if (t.dim() > DD_MAX_RANK) {
    set_error("result has more than 8 dimensions");
    return 1;
  }
  out->dtype = dtype_code(t);
  out->rank = t.dim();
  for (int64_t i = 0; i < t.dim(); i++) out->sizes[i] = t.size(i);
  out->handle = static_cast<int64_t>(reinterpret_cast<intptr_t>(new at::Tensor(std::move(t))));
  g_live++;
  return 0;
}

at::IntArrayRef ints(const int64_t* p, int32_t n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

}  // namespace

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

}  // namespace deconv

// Every entry point body runs inside DD_TRY ... DD_CATCH so that no exception escapes.
#define DD_TRY try {
#define DD_CATCH                                   \
  }                                                \
  catch (const c10::Error& e) {                    \
    set_error(e.what_without_backtrace());         \
    return 1;                                      \
  }                                                \
  catch (const std::exception& e) {                \
    set_error(e.what());                           \
    return 1;                                      \
  }                                                \
  catch (...) {                                    \
    set_error("unknown C++ exception");            \
    return 1;                                      \
  }

extern "C" {

const char* dd_last_error(void) { return g_error.c_str(); }

int32_t dd_cuda_device_count(void) {
  try {
    if (!at::hasCUDA()) return 0;
    return at::detail::getCUDAHooks().getNumGPUs();
  } catch (...) {
    return 0;
  }
}

int32_t dd_init(int32_t use_cuda, int32_t cpu_threads) {
  DD_TRY
  if (use_cuda) {
    int32_t n = dd_cuda_device_count();
    if (n <= 0) {
      set_error(at::hasCUDA() ? "libtorch has CUDA but no GPU is visible"
                              : "this libtorch was built without CUDA");
      return 1;
    }
    g_cuda_name = "cuda:0 (" + std::to_string(n) + " GPU" + (n > 1 ? "s" : "") + " visible)";
  }
  dd::install_caching_cpu_allocator();
  int32_t threads = cpu_threads > 0 ? cpu_threads
                                    : static_cast<int32_t>(std::thread::hardware_concurrency());
  // libtorch 1.13 defaults to half the cores; use them all.
  at::set_num_threads(threads < 1 ? 1 : threads);
  int32_t used = at::get_num_threads();
  g_cpu_name = "cpu (" + std::to_string(used) + (used == 1 ? " thread)" : " threads)");
  // Gradients are recorded only inside valueAndGrad (see dd_set_grad_enabled).
  c10::GradMode::set_enabled(false);
  return 0;
  DD_CATCH
}

const char* dd_version(void) {
  static const std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." +
                               std::to_string(TORCH_VERSION_MINOR) + "." +
                               std::to_string(TORCH_VERSION_PATCH);
  return v.c_str();
}

const char* dd_device_name(int32_t use_cuda) {
  return use_cuda ? g_cuda_name.c_str() : g_cpu_name.c_str();
}

int64_t dd_live_handles(void) { return g_live; }

int32_t dd_set_autocast(int32_t enabled) {
  DD_TRY
  if (!at::hasCUDA()) return 0;  // autocast is a CUDA speed switch here; CPU stays float32
#if DD_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled != 0);
#else
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(enabled != 0);
#endif
  if (!enabled) at::autocast::clear_cache();
  return 0;
  DD_CATCH
}

int32_t dd_set_grad_enabled(int32_t enabled) {
  bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(enabled != 0);
  return previous ? 1 : 0;
}

// ---- creation, reading, freeing ----

int32_t dd_from_data(const void* data, int32_t dtype, const int64_t* shape, int32_t rank,
                     int32_t use_cuda, dd_out* out) {
  DD_TRY
  auto type = dtype == DD_INT32 ? at::kInt : at::kFloat;
  // from_blob does not copy: clone (CPU) or copy to the device before the host buffer goes away.
  at::Tensor host = at::from_blob(const_cast<void*>(data), ints(shape, rank),
                                  at::TensorOptions().dtype(type));
  return emit(use_cuda ? host.to(device_for(1)) : host.clone(), out);
  DD_CATCH
}

int32_t dd_full(const int64_t* shape, int32_t rank, double value, int32_t use_cuda, dd_out* out) {
  DD_TRY
  auto options = at::TensorOptions().dtype(at::kFloat).device(device_for(use_cuda));
  return emit(at::full(ints(shape, rank), value, options), out);
  DD_CATCH
}

int32_t dd_read(dd_tensor t, void* dst, int64_t nbytes) {
  DD_TRY
  at::Tensor src = T(t).detach();
  if (src.scalar_type() != at::kInt && src.scalar_type() != at::kFloat) src = src.to(at::kFloat);
  src = src.to(at::kCPU).contiguous();
  int64_t have = src.numel() * static_cast<int64_t>(src.element_size());
  if (have != nbytes) {
    set_error(("read: tensor holds " + std::to_string(have) + " bytes, buffer has " +
               std::to_string(nbytes)).c_str());
    return 1;
  }
  if (nbytes > 0) std::memcpy(dst, src.data_ptr(), static_cast<size_t>(nbytes));
  return 0;
  DD_CATCH
}

void dd_free(dd_tensor t) {
  if (t == nullptr) return;
  delete static_cast<at::Tensor*>(t);
  g_live--;
}

int32_t dd_variable(dd_tensor init, int32_t trainable, dd_out* out) {
  DD_TRY
  at::Tensor v = conv_layout(T(init).detach()).clone();
  if (v.scalar_type() != at::kFloat && trainable) v = v.to(at::kFloat);
  v.set_requires_grad(trainable != 0);
  return emit(v, out);
  DD_CATCH
}

int32_t dd_assign(dd_tensor dst, dd_tensor src) {
  DD_TRY
  at::NoGradGuard no_grad;
  if (!T(dst).sizes().equals(T(src).sizes())) {
    set_error("assign: shapes differ");
    return 1;
  }
  T(dst).copy_(T(src));
  return 0;
  DD_CATCH
}

// ---- elementwise ----

int32_t dd_unary(int32_t op, dd_tensor a, dd_out* out) {
  DD_TRY
  const at::Tensor& x = T(a);
  switch (op) {
    case DD_NEG: return emit(at::neg(x), out);
    case DD_EXP: return emit(at::exp(x), out);
    case DD_LOG: return emit(at::log(x), out);
    case DD_SQRT: return emit(at::sqrt(x), out);
    case DD_ABS: return emit(at::abs(x), out);
    case DD_RELU: return emit(at::relu(x), out);
    case DD_GELU: return emit(layout_safe_gelu(x), out);  // exact erf form (approximate="none")
    case DD_SILU: return emit(at::silu(x), out);
    case DD_TANH: return emit(at::tanh(x), out);
    case DD_SIGMOID: return emit(at::sigmoid(x), out);
    case DD_DETACH: return emit(x.detach(), out);
  }
  set_error("unknown unary op code");
  return 1;
  DD_CATCH
}

int32_t dd_binary(int32_t op, dd_tensor a, dd_tensor b, dd_out* out) {
  DD_TRY
  const at::Tensor& x = T(a);
  const at::Tensor& y = T(b);
  switch (op) {
    case DD_ADD: return emit(at::add(x, y), out);
    case DD_SUB: return emit(at::sub(x, y), out);
    case DD_MUL: return emit(at::mul(x, y), out);
    case DD_DIV: return emit(at::div(x, y), out);
    case DD_GREATER: return emit(at::gt(x, y).to(at::kFloat), out);
  }
  set_error("unknown binary op code");
  return 1;
  DD_CATCH
}

int32_t dd_binary_scalar(int32_t op, dd_tensor a, double b, dd_out* out) {
  DD_TRY
  const at::Tensor& x = T(a);
  switch (op) {
    case DD_ADD: return emit(at::add(x, b), out);
    case DD_SUB: return emit(at::sub(x, b), out);
    case DD_MUL: return emit(at::mul(x, b), out);
    case DD_DIV: return emit(at::div(x, b), out);
    case DD_GREATER: return emit(at::gt(x, b).to(at::kFloat), out);
    case DD_POW: return emit(at::pow(x, b), out);
    case DD_LEAKY_RELU: return emit(at::leaky_relu(x, b), out);
  }
  set_error("unknown scalar op code");
  return 1;
  DD_CATCH
}

int32_t dd_clamp(dd_tensor a, double lo, double hi, dd_out* out) {
  DD_TRY
  return emit(at::clamp(T(a), lo, hi), out);
  DD_CATCH
}

int32_t dd_where(dd_tensor cond, dd_tensor a, dd_tensor b, dd_out* out) {
  DD_TRY
  return emit(at::where(T(cond).ne(0), T(a), T(b)), out);
  DD_CATCH
}

int32_t dd_cast(dd_tensor a, int32_t dtype, dd_out* out) {
  DD_TRY
  return emit(T(a).detach().to(dtype == DD_INT32 ? at::kInt : at::kFloat), out);
  DD_CATCH
}

int32_t dd_softmax(dd_tensor a, int32_t axis, dd_out* out) {
  DD_TRY
  return emit(at::softmax(T(a), axis), out);
  DD_CATCH
}

// ---- reductions and shape ----

int32_t dd_reduce(int32_t op, dd_tensor a, const int64_t* axes, int32_t n_axes, int32_t keepdim,
                  dd_out* out) {
  DD_TRY
  const at::Tensor& x = T(a);
  if (x.dim() == 0) return emit(x.clone(), out);
  auto dims = ints(axes, n_axes);
  switch (op) {
    case DD_SUM: return emit(at::sum(x, dims, keepdim != 0), out);
    case DD_MEAN: return emit(at::mean(x, dims, keepdim != 0), out);
    case DD_MAX: return emit(at::amax(x.detach(), dims, keepdim != 0), out);
  }
  set_error("unknown reduction code");
  return 1;
  DD_CATCH
}

int32_t dd_reshape(dd_tensor a, const int64_t* shape, int32_t rank, dd_out* out) {
  DD_TRY
  return emit(at::reshape(T(a), ints(shape, rank)), out);
  DD_CATCH
}

int32_t dd_permute(dd_tensor a, const int64_t* dims, int32_t rank, dd_out* out) {
  DD_TRY
  return emit(T(a).permute(ints(dims, rank)), out);
  DD_CATCH
}

int32_t dd_slice(dd_tensor a, const int64_t* begin, const int64_t* size, int32_t rank,
                 dd_out* out) {
  DD_TRY
  at::Tensor x = T(a);
  if (rank != x.dim()) {
    set_error("slice: begin/size length differs from the tensor's rank");
    return 1;
  }
  for (int32_t d = 0; d < rank; d++) {
    int64_t len = size[d] < 0 ? x.size(d) - begin[d] : size[d];
    x = x.narrow(d, begin[d], len);
  }
  return emit(x, out);
  DD_CATCH
}

int32_t dd_cat(const int64_t* handles, int32_t n, int32_t axis, dd_out* out) {
  DD_TRY
  std::vector<at::Tensor> xs;
  xs.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; i++) xs.push_back(T(handles[i]));
  return emit(at::cat(xs, axis), out);
  DD_CATCH
}

int32_t dd_gather(dd_tensor a, dd_tensor indices, int32_t axis, dd_out* out) {
  DD_TRY
  const at::Tensor& idx = T(indices);
  if (idx.scalar_type() != at::kInt && idx.scalar_type() != at::kLong) {
    set_error("gather: indices must be int32");
    return 1;
  }
  at::Tensor flat = idx.reshape({-1}).to(at::kLong);
  const at::Tensor& x = T(a);
  int64_t d = axis < 0 ? axis + x.dim() : axis;
  at::Tensor picked = at::index_select(x, d, flat);
  // The indices' own shape replaces the gathered axis (like tf.gather / embedding lookup).
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + d);
  for (auto s : idx.sizes()) shape.push_back(s);
  for (int64_t i = d + 1; i < x.dim(); i++) shape.push_back(x.size(i));
  return emit(picked.reshape(shape), out);
  DD_CATCH
}

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

}  // extern "C"

namespace {

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

}  // namespace

extern "C" {

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
    at::Tensor y = deconv::Function::apply(conv_layout(T(x)), conv_layout(T(w)), stride, padding,
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

}  // extern "C"
