// Helpers shared by the C entry points (abi/*.cpp): handles, results, errors. Internal to
// the shim; the public surface is shim.h.
#pragma once

#include "shim.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <string>

#define DD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||     \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace dd::abi {

extern thread_local std::string g_error;
// Per thread: Deno runs each test module (worker) on its own thread in one process, and each
// worker's handles are created and freed on that thread.
extern thread_local int64_t g_live;

inline void set_error(const char* msg) { g_error = msg ? msg : "unknown error"; }

inline at::Tensor& T(dd_tensor h) { return *static_cast<at::Tensor*>(h); }
inline at::Tensor& T(int64_t h) { return *reinterpret_cast<at::Tensor*>(static_cast<intptr_t>(h)); }

// Optional tensor argument: NULL means "absent".
inline c10::optional<at::Tensor> opt(dd_tensor h) {
  if (h == nullptr) return c10::nullopt;
  return T(h);
}

inline at::Device device_for(int32_t use_cuda) { return use_cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU); }

// Writes t (dtype normalised) into out as a new handle; 1 with the error set if it cannot.
int emit(at::Tensor t, dd_out* out);

inline at::IntArrayRef ints(const int64_t* p, int32_t n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }

}  // namespace dd::abi


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
