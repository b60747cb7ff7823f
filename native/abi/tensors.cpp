// deno-diffusion native shim, first half of the C entry points: runtime, tensors, elementwise,
// reductions and shape. See shim.h for the conventions.
// Builds against libtorch 1.13 (Debian, CPU) and 2.x (PyTorch wheels/zips, CUDA); version gaps
// are handled with #if on TORCH_VERSION_MAJOR/MINOR.
#include "shim.h"
#include "common.h"

#include "../kernels/cpu_allocator.h"
#include "../ops/conv.h"
#include "../ops/gelu.h"

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

namespace dd::abi {

thread_local std::string g_error;
thread_local int64_t g_live = 0;

namespace {

std::string g_cpu_name = "cpu";
std::string g_cuda_name = "cuda";

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

}  // namespace

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

}  // namespace dd::abi

using namespace dd::abi;
using dd::ops::conv_layout;
using dd::ops::layout_safe_gelu;

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

}  // extern "C"
