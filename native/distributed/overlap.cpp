// Gradients averaged over ranks with the all-reduce overlapped with the backward pass, the way
// PyTorch's DistributedDataParallel does it: a hook on every parameter copies its gradient into
// a flat bucket the moment autograd produces it, and a bucket whose gradients have all arrived
// is all-reduced asynchronously while backward goes on with the earlier layers.
//
// Buckets hold the parameters in reverse order (the order backward produces them), the first
// one small (DDP's 1 MiB) so the first collective starts early. Buckets are launched strictly in
// bucket order, never out of it, so every rank issues the same collectives in the same order even
// if one rank's autograd finishes a later bucket first (Gloo/NCCL match collectives by order).
//
// Why own hooks and not c10d::Reducer (Debian's libtorch 1.13 does export it): the Reducer is
// driven by AccumulateGrad post-hooks, i.e. by `.grad` accumulation in loss.backward() with a
// Python-side DDP module preparing every iteration; the shim computes gradients functionally and
// needs none of its rebucketing, unused-parameter search or comm-hook machinery.
//
// libtorch 1.13 does not run leaf tensor hooks under torch::autograd::grad (the engine captures
// the gradient before AccumulateGrad), so this runs torch::autograd::backward with `inputs` =
// the parameters, whose AccumulateGrad pre-hooks do fire, and then puts each `.grad` back as it
// was: the numbers are those of dd_grad.
#include "distributed.h"
#include "group.h"

#include "../abi/common.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Bucket {
  std::vector<int32_t> params;  // indices into the caller's list, in bucket order
  int64_t numel = 0;
  int32_t pending = 0;  // gradients not yet copied in
  at::Tensor flat;      // [numel]
  c10::intrusive_ptr<c10d::Work> work;
  double launched_ms = -1;
  // Written by the collective's own thread when it completes; shared so that a callback that
  // fires after a failed call returned writes nowhere freed.
  std::shared_ptr<std::atomic<int64_t>> done_ns = std::make_shared<std::atomic<int64_t>>(-1);
};

struct Overlap {
  dd_dist::Group& g;
  Clock::time_point t0 = Clock::now();
  std::vector<Bucket> buckets;
  std::vector<int32_t> bucket_of;  // [n]
  std::vector<int64_t> offset_of;  // [n]
  std::vector<char> arrived;       // [n]
  size_t next = 0;                 // first bucket not launched yet
  std::exception_ptr launch_error;

  explicit Overlap(dd_dist::Group& group) : g(group) {}

  double ms_since_start(Clock::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - t0).count();
  }

  void launch_ready() {
    while (next < buckets.size() && buckets[next].pending == 0) {
      Bucket& b = buckets[next++];
      b.launched_ms = ms_since_start(Clock::now());
      std::vector<at::Tensor> io{b.flat};
      try {
        b.work = g.pg->allreduce(io);
      } catch (...) {
        // Raised again inside dd_dist::collective after backward, where a failure is explained
        // (which rank died); thrown here it would come out of autograd unexplained.
        launch_error = std::current_exception();
        next = buckets.size();
        return;
      }
      auto done = b.done_ns;
      const auto t0_copy = t0;
      b.work->getFuture()->addCallback([done, t0_copy](c10::ivalue::Future&) {
        done->store(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0_copy)
                        .count());
      });
    }
  }

  void arrive(int32_t i, const at::Tensor& grad) {
    at::NoGradGuard no_grad;
    Bucket& b = buckets[static_cast<size_t>(bucket_of[static_cast<size_t>(i)])];
    at::Tensor slot = b.flat.narrow(0, offset_of[static_cast<size_t>(i)], grad.numel());
    if (arrived[static_cast<size_t>(i)]) {
      slot.add_(grad.reshape({-1}));  // a second arrival (not seen with AccumulateGrad) adds up
      return;
    }
    slot.copy_(grad.reshape({-1}));
    arrived[static_cast<size_t>(i)] = 1;
    if (--b.pending == 0) launch_ready();
  }
};

}  // namespace

extern "C" {

int32_t dd_dist_grad_mean(dd_group group, dd_tensor loss, const int64_t* params, int32_t n,
                          int64_t bucket_bytes, int64_t first_bucket_bytes, int64_t* grads_out,
                          double* stats_out) {
  using dd::abi::T;
  try {
    auto& g = *static_cast<dd_dist::Group*>(group);
    const at::Tensor& L = T(loss);
    if (L.numel() != 1) return dd_dist::fail("valueAndGrad: the loss must be a scalar");
    if (n <= 0) return 0;
    std::vector<at::Tensor> inputs;
    for (int32_t i = 0; i < n; i++) inputs.push_back(T(params[i]));

    Overlap o(g);
    o.bucket_of.assign(static_cast<size_t>(n), -1);
    o.offset_of.assign(static_cast<size_t>(n), 0);
    o.arrived.assign(static_cast<size_t>(n), 0);
    int64_t filled = 0;
    for (int32_t i = n - 1; i >= 0; i--) {
      const at::Tensor& p = inputs[static_cast<size_t>(i)];
      const int64_t cap = o.buckets.size() == 1 ? first_bucket_bytes : bucket_bytes;
      bool fresh = o.buckets.empty() || filled >= cap;
      if (!fresh) {
        const at::Tensor& head = inputs[static_cast<size_t>(o.buckets.back().params[0])];
        fresh = head.scalar_type() != p.scalar_type() || head.device() != p.device();
      }
      if (fresh) {
        o.buckets.emplace_back();
        filled = 0;
      }
      Bucket& b = o.buckets.back();
      o.bucket_of[static_cast<size_t>(i)] = static_cast<int32_t>(o.buckets.size() - 1);
      o.offset_of[static_cast<size_t>(i)] = b.numel;
      b.params.push_back(i);
      b.numel += p.numel();
      b.pending++;
      filled += p.numel() * static_cast<int64_t>(p.element_size());
    }
    for (auto& b : o.buckets) {
      // Zeros: a parameter the loss does not use never reports, and its gradient is zero.
      b.flat = at::zeros({b.numel}, inputs[static_cast<size_t>(b.params[0])].options()
                                        .requires_grad(false));
    }

    // Hooks in, `.grad` cleared (backward accumulates into it), both undone on every way out.
    std::vector<at::Tensor> saved(static_cast<size_t>(n));
    std::vector<unsigned> hooks;
    struct Restore {
      std::vector<at::Tensor>& inputs;
      std::vector<at::Tensor>& saved;
      std::vector<unsigned>& hooks;
      ~Restore() {
        for (size_t i = 0; i < hooks.size(); i++) inputs[i].remove_hook(hooks[i]);
        for (size_t i = 0; i < inputs.size(); i++) inputs[i].mutable_grad() = saved[i];
      }
    } restore{inputs, saved, hooks};
    for (int32_t i = 0; i < n; i++) {
      at::Tensor& p = inputs[static_cast<size_t>(i)];
      saved[static_cast<size_t>(i)] = p.grad();
      p.mutable_grad() = at::Tensor();
      hooks.push_back(p.register_hook([&o, i](const at::Tensor& grad) {
        if (grad.defined()) o.arrive(i, grad);
      }));
    }

    const Clock::time_point backward_start = Clock::now();
    if (L.requires_grad()) {
      torch::autograd::backward({L.reshape({})}, {}, /*retain_graph=*/false,
                                /*create_graph=*/false, inputs);
    }
    const Clock::time_point backward_end = Clock::now();
    const size_t launched_in_backward = o.next;

    double wait_ms = 0;
    dd_dist::collective(g, "all_reduce (overlapped with backward)", [&] {
      for (auto& b : o.buckets) b.pending = 0;  // the rest never reported: zeros
      if (!o.launch_error) o.launch_ready();
      if (o.launch_error) std::rethrow_exception(o.launch_error);
      for (auto& b : o.buckets) {
        b.work->wait();
        if (b.done_ns->load() < 0) {
          b.done_ns->store(
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - o.t0).count());
        }
      }
      wait_ms = std::chrono::duration<double, std::milli>(Clock::now() - backward_end).count();
    });

    // In-flight time of the collectives (union of [launch, done]) and its part before
    // backward ended, i.e. hidden behind computation.
    const double end_ms = o.ms_since_start(backward_end);
    std::vector<std::pair<double, double>> spans;
    for (auto& b : o.buckets) spans.emplace_back(b.launched_ms, b.done_ns->load() / 1e6);
    std::sort(spans.begin(), spans.end());
    double comm_ms = 0, hidden_ms = 0, lo = -1, hi = -1;
    auto close = [&] {
      if (hi <= lo) return;
      comm_ms += hi - lo;
      hidden_ms += std::max(0.0, std::min(hi, end_ms) - lo);
    };
    for (auto& [s, e] : spans) {
      if (s > hi) {
        close();
        lo = s;
        hi = e;
      } else {
        hi = std::max(hi, e);
      }
    }
    close();

    at::NoGradGuard no_grad;
    for (auto& b : o.buckets) b.flat.div_(g.world);
    for (int32_t i = 0; i < n; i++) {
      const Bucket& b = o.buckets[static_cast<size_t>(o.bucket_of[static_cast<size_t>(i)])];
      const at::Tensor& p = inputs[static_cast<size_t>(i)];
      at::Tensor view = b.flat.narrow(0, o.offset_of[static_cast<size_t>(i)], p.numel())
                            .view(p.sizes());
      grads_out[i] = static_cast<int64_t>(reinterpret_cast<intptr_t>(new at::Tensor(view)));
      dd::abi::g_live++;
    }
    if (stats_out) {
      stats_out[0] = static_cast<double>(o.buckets.size());
      stats_out[1] = static_cast<double>(launched_in_backward);
      stats_out[2] = std::chrono::duration<double, std::milli>(backward_end - backward_start)
                         .count();
      stats_out[3] = wait_ms;
      stats_out[4] = comm_ms;
      stats_out[5] = hidden_ms;
    }
    return 0;
  } catch (const c10::Error& e) {
    return dd_dist::fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dd_dist::fail(e.what());
  }
}

}  // extern "C"
