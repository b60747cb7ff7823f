/*
 * deno-diffusion native shim, data-parallel part: a C ABI over libtorch's c10d (TCPStore
 * rendezvous, ProcessGroupGloo on CPU, ProcessGroupNCCL in CUDA builds) for Deno FFI.
 *
 * Same conventions as ../shim.h: the return value is a status (0 = ok); on failure
 * dd_dist_last_error() returns the message of the calling thread's last failure. Tensors are
 * the shim's handles (`dd_tensor`, passed as int64 arrays). A group is an opaque handle freed
 * with dd_dist_free.
 */
#ifndef DD_DISTRIBUTED_H
#define DD_DISTRIBUTED_H

#include <stdint.h>

#include "../abi/shim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void* dd_group;

/* Collective backends (dd_dist_init, dd_dist_available). */
enum { DD_DIST_GLOO = 0, DD_DIST_NCCL = 1 };

const char* dd_dist_last_error(void);
/* 1 when this shim was compiled with the backend, 0 when not. */
int32_t dd_dist_available(int32_t backend);

/*
 * Joins the job: rank 0 serves a TCPStore on master_addr:port, every rank connects to it,
 * announces (world_size, config_hash) and checks every other rank's, then the process group
 * connects. timeout_ms bounds every wait (rendezvous and each later collective).
 * cuda_device >= 0 selects the GPU for NCCL. Fails with a message naming the problem: port in
 * use, master unreachable, a rank missing, world sizes or config hashes that differ.
 */
int32_t dd_dist_init(const char* master_addr, int32_t port, int32_t rank, int32_t world_size,
                     int32_t backend, int32_t cuda_device, int64_t timeout_ms,
                     const char* config_hash, dd_group* group_out);
void dd_dist_free(dd_group group);

/* tensors[i] <- mean over ranks of tensors[i], through flat buckets of about bucket_bytes;
 * every bucket is in flight before the first is waited for. The handles are repointed to
 * views of the reduced buckets (same shapes). */
int32_t dd_dist_all_reduce_mean(dd_group group, const int64_t* tensors, int32_t n,
                                int64_t bucket_bytes);
/*
 * d loss / d params[i] (as dd_grad), averaged over ranks, with the all-reduce overlapped with
 * the backward pass (PyTorch DDP's scheme, overlap.cpp): gradients fill flat buckets in reverse
 * parameter order (the first of about first_bucket_bytes, the others of about bucket_bytes) and
 * each full bucket is all-reduced asynchronously while backward continues; all are waited for
 * after backward. grads_out[i] gets a new handle (a view of its reduced bucket). When stats_out
 * is not NULL it receives DD_DIST_OVERLAP_STATS values: buckets, buckets launched before
 * backward ended, backward ms, ms waited for the collectives after backward, ms during which a
 * collective was in flight, and of those the ms before backward ended (hidden).
 */
enum { DD_DIST_OVERLAP_STATS = 6 };
int32_t dd_dist_grad_mean(dd_group group, dd_tensor loss, const int64_t* params, int32_t n,
                          int64_t bucket_bytes, int64_t first_bucket_bytes, int64_t* grads_out,
                          double* stats_out);
/* tensors[i] <- root's tensors[i], in place (parameters, buffers, optimizer moments). */
int32_t dd_dist_broadcast(dd_group group, const int64_t* tensors, int32_t n, int32_t root);
/* values[i] <- sum over ranks of values[i] (host float64, e.g. metrics). */
int32_t dd_dist_all_reduce_sum_f64(dd_group group, double* values, int32_t n);
/* dst[r * n + i] <- rank r's src[i]: every rank passes the same n; dst holds world * n. */
int32_t dd_dist_all_gather_f32(dd_group group, const float* src, int64_t n, float* dst);
int32_t dd_dist_barrier(dd_group group);

/*
 * Training-mode BatchNorm whose batch statistics are those of the union of every rank's batch
 * (PyTorch's SyncBatchNorm): per-channel sums are all-reduced in the forward pass and the two
 * gradient sums in the backward pass. Updates the running statistics in place like
 * dd_batch_norm; the result handle comes through the shim (counted by dd_live_handles).
 */
int32_t dd_dist_sync_batch_norm(dd_group group, dd_tensor x, dd_tensor weight, dd_tensor bias,
                                dd_tensor running_mean, dd_tensor running_var, double momentum,
                                double eps, dd_out* out);

#ifdef __cplusplus
}
#endif

#endif /* DD_DISTRIBUTED_H */
