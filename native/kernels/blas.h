// BLAS thread control for kernels that split work over ATen's threads themselves.
#pragma once

#include <ATen/ATen.h>
#include <dlfcn.h>

namespace dd {

// openblas-pthread keeps its own thread pool; BLAS calls from inside at::parallel_for must not
// start more threads on top of ATen's. Looked up at run time: other BLAS builds lack the call.
struct SingleThreadedBlas {
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  SetThreads set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  GetThreads get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  int previous = get ? get() : 0;
  SingleThreadedBlas() {
    if (set && previous > 1) set(1);
  }
  ~SingleThreadedBlas() {
    if (set && previous > 1) set(previous);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

}  // namespace dd
