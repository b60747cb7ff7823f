/*
 * deno-diffusion native shim: a C ABI over libtorch's ATen for Deno FFI.
 *
 * Conventions (every function):
 *  - Tensors are opaque handles (`dd_tensor`, really a heap `at::Tensor*`), freed with dd_free.
 *  - The return value is a status: 0 = ok, non-zero = failure; dd_last_error() then returns the
 *    message. No C++ exception ever crosses this boundary.
 *  - Ops producing a tensor write it into `dd_out` (handle, dtype, rank, sizes) so the caller
 *    learns the result's shape in the same call.
 *  - Shapes and axis lists are int64 arrays plus a length. Optional tensors may be NULL.
 */
#ifndef DD_SHIM_H
#define DD_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void* dd_tensor;

#define DD_MAX_RANK 8

/* dtype codes shared with src/backend/torch.ts */
#define DD_FLOAT32 0
#define DD_INT32 1

/* Result of an op: the new handle and its shape. */
typedef struct dd_out {
  int64_t handle; /* the dd_tensor, as an integer */
  int64_t dtype;  /* DD_FLOAT32 or DD_INT32 */
  int64_t rank;
  int64_t sizes[DD_MAX_RANK];
} dd_out;

/* Unary op codes (dd_unary). */
enum {
  DD_NEG = 0, DD_EXP, DD_LOG, DD_SQRT, DD_ABS, DD_RELU, DD_GELU, DD_SILU, DD_TANH,
  DD_SIGMOID, DD_DETACH
};
/* Binary op codes (dd_binary, dd_binary_scalar). */
enum { DD_ADD = 0, DD_SUB, DD_MUL, DD_DIV, DD_GREATER, DD_POW, DD_LEAKY_RELU };
/* Activation codes fused into dd_conv2d. */
enum { DD_ACT_NONE = 0, DD_ACT_RELU };
/* Reduction codes (dd_reduce). */
enum { DD_SUM = 0, DD_MEAN, DD_MAX };

/* ---- library ---- */
const char* dd_last_error(void);
/* Checks the device (1 = CUDA, 0 = CPU) is usable and sets the CPU threads (<= 0: all cores).
 * Fails when CUDA is asked for but unavailable. Devices are per tensor: creation calls take
 * the device code, every other op runs where its inputs are. */
int32_t dd_init(int32_t use_cuda, int32_t cpu_threads);
/* Number of CUDA GPUs visible to libtorch (0 when built without CUDA). */
int32_t dd_cuda_device_count(void);
/* "1.13.0"-like libtorch version and a device description; static strings. */
const char* dd_version(void);
const char* dd_device_name(int32_t use_cuda);
/* Handles created and not yet freed by the calling thread (leak tests). */
int64_t dd_live_handles(void);
/* CUDA autocast to bfloat16 on/off (no-op status 0 on CPU; fails on libtorch < 1.10). */
int32_t dd_set_autocast(int32_t enabled);
/* Global grad mode; returns the previous mode (1/0). */
int32_t dd_set_grad_enabled(int32_t enabled);

/* ---- creation, reading, freeing ---- */
int32_t dd_from_data(const void* data, int32_t dtype, const int64_t* shape, int32_t rank,
                     int32_t use_cuda, dd_out* out);
int32_t dd_full(const int64_t* shape, int32_t rank, double value, int32_t use_cuda, dd_out* out);
/* Copies the tensor (converted to its reported dtype, contiguous) into dst of nbytes. */
int32_t dd_read(dd_tensor t, void* dst, int64_t nbytes);
void dd_free(dd_tensor t);
/* A fresh leaf: a copy of init, requires_grad = trainable. */
int32_t dd_variable(dd_tensor init, int32_t trainable, dd_out* out);
/* dst <- src in place, without recording gradients. */
int32_t dd_assign(dd_tensor dst, dd_tensor src);

/* ---- elementwise ---- */
int32_t dd_unary(int32_t op, dd_tensor a, dd_out* out);
int32_t dd_binary(int32_t op, dd_tensor a, dd_tensor b, dd_out* out);
int32_t dd_binary_scalar(int32_t op, dd_tensor a, double b, dd_out* out);
int32_t dd_clamp(dd_tensor a, double lo, double hi, dd_out* out);
int32_t dd_where(dd_tensor cond, dd_tensor a, dd_tensor b, dd_out* out);
int32_t dd_cast(dd_tensor a, int32_t dtype, dd_out* out);
int32_t dd_softmax(dd_tensor a, int32_t axis, dd_out* out);

/* ---- reductions and shape ---- */
int32_t dd_reduce(int32_t op, dd_tensor a, const int64_t* axes, int32_t n_axes, int32_t keepdim,
                  dd_out* out);
int32_t dd_reshape(dd_tensor a, const int64_t* shape, int32_t rank, dd_out* out);
int32_t dd_permute(dd_tensor a, const int64_t* dims, int32_t rank, dd_out* out);
int32_t dd_slice(dd_tensor a, const int64_t* begin, const int64_t* size, int32_t rank,
                 dd_out* out);
int32_t dd_cat(const int64_t* handles, int32_t n, int32_t axis, dd_out* out);
int32_t dd_gather(dd_tensor a, dd_tensor indices, int32_t axis, dd_out* out);

/* ---- layers (NCHW at the interface) ---- */
int32_t dd_matmul(dd_tensor a, dd_tensor b, dd_out* out);
int32_t dd_linear(dd_tensor x, dd_tensor w, dd_tensor b, dd_out* out);
/* Zero padding pad_h rows top and bottom, pad_w columns left and right; activation
 * DD_ACT_NONE or DD_ACT_RELU (applied after the bias). */
int32_t dd_conv2d(dd_tensor x, dd_tensor w, dd_tensor b, int32_t stride, int32_t pad_h,
                  int32_t pad_w, int32_t activation, dd_out* out);
int32_t dd_conv_transpose2d(dd_tensor x, dd_tensor w, dd_tensor b, int32_t stride,
                            int32_t padding, int32_t output_padding, dd_out* out);
int32_t dd_group_norm(dd_tensor x, int32_t groups, dd_tensor w, dd_tensor b, double eps,
                      dd_out* out);
int32_t dd_layer_norm(dd_tensor x, dd_tensor w, dd_tensor b, double eps, dd_out* out);
int32_t dd_batch_norm(dd_tensor x, dd_tensor w, dd_tensor b, dd_tensor running_mean,
                      dd_tensor running_var, int32_t training, double momentum, double eps,
                      dd_out* out);
int32_t dd_max_pool2d(dd_tensor x, int32_t kernel, int32_t stride, int32_t padding, dd_out* out);
int32_t dd_avg_pool2d(dd_tensor x, int32_t kernel, int32_t stride, int32_t padding,
                      int32_t count_include_pad, dd_out* out);
int32_t dd_interpolate_bilinear(dd_tensor x, int32_t height, int32_t width, int32_t align_corners,
                                dd_out* out);
int32_t dd_attention(dd_tensor q, dd_tensor k, dd_tensor v, dd_out* out);
int32_t dd_mse_loss(dd_tensor pred, dd_tensor target, dd_out* out);
int32_t dd_bce_with_logits(dd_tensor logits, dd_tensor targets, dd_out* out);

/* ---- autograd and optimisation ---- */
/* d loss / d params[i] into grads_out[i] (handles; zeros for unused params). */
int32_t dd_grad(dd_tensor loss, const int64_t* params, int32_t n, int64_t* grads_out);
/* Fused AdamW (decoupled weight decay; weight_decay 0 = Adam) over n parameters; step >= 1 is
 * the number of this update. */
int32_t dd_adam_step(const int64_t* params, const int64_t* grads, const int64_t* m,
                     const int64_t* v, int32_t n, int32_t step, double lr, double beta1,
                     double beta2, double eps, double weight_decay);
/* targets[i] <- decay * targets[i] + (1 - decay) * sources[i] */
int32_t dd_ema_update(const int64_t* targets, const int64_t* sources, int32_t n, double decay);

/* ---- host linear algebra ---- */
/* Symmetric eigendecomposition (float64, row-major n x n): ascending values, vectors as columns. */
int32_t dd_eigh_f64(const double* a, int32_t n, double* values, double* vectors);
/* Symmetric eigenvalues only (float64, row-major n x n, lower triangle read), ascending. */
int32_t dd_eigvalsh_f64(const double* a, int32_t n, double* values);

#ifdef __cplusplus
}
#endif

#endif /* DD_SHIM_H */
