// deno-diffusion native shim, data-parallel part: rendezvous, process groups and collectives
// over libtorch's c10d. See distributed.h for the C ABI and its conventions.
//
// Rendezvous is c10d's TCPStore (rank 0 serves it). Before the process group connects, every
// rank writes "WORLD_SIZE config-hash" under dd/hello/<rank> and compares it with the others',
// so a wrong WORLD_SIZE or a different command line fails at start with both values named,
// instead of hanging in the first collective. A heartbeat thread writes
// "<collectives entered> <beat>" under dd/beat/<rank> about once a second; when a collective
// fails, the survivor reads the beats twice to name the rank that died (beat stopped) or hangs
// (beating, but behind in collectives).
#include "distributed.h"
#include "group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace {

thread_local std::string g_error;
using dd_dist::fail;

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

std::string secs(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); i++) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

std::chrono::milliseconds beat_interval(const dd_dist::Group& g) {
  return std::min(std::chrono::milliseconds(1000), std::max(std::chrono::milliseconds(50),
                                                            g.timeout / 4));
}

std::string beat_key(int rank) { return "dd/beat/" + std::to_string(rank); }

struct Beat {
  bool present = false;
  int64_t seq = 0;
  int64_t count = 0;
};

std::vector<Beat> read_beats(dd_dist::Group& g) {
  std::vector<Beat> beats(g.world);
  for (int r = 0; r < g.world; r++) {
    if (!g.store->check({beat_key(r)})) continue;
    std::istringstream in(text(g.store->get(beat_key(r))));
    beats[r].present = static_cast<bool>(in >> beats[r].seq >> beats[r].count);
  }
  return beats;
}

std::string describe_failure(dd_dist::Group& g, const char* name, int64_t seq,
                             const std::string& cause) {
  std::string head = std::string(name) + " (collective #" + std::to_string(seq) +
                     ") failed on rank " + std::to_string(g.rank) + " of " +
                     std::to_string(g.world);
  std::string who;
  try {
    const auto wait = beat_interval(g) * 5 / 2;
    const std::vector<Beat> before = read_beats(g);
    std::this_thread::sleep_for(wait);
    const std::vector<Beat> after = read_beats(g);
    std::vector<int> dead, behind;
    int64_t behind_at = seq;
    for (int r = 0; r < g.world; r++) {
      if (r == g.rank) continue;
      if (!after[r].present || (before[r].present && before[r].count == after[r].count)) {
        dead.push_back(r);
      } else if (after[r].seq < seq) {
        behind.push_back(r);
        behind_at = std::min(behind_at, after[r].seq);
      }
    }
    if (!dead.empty()) {
      who = "rank " + rank_list(dead) + " stopped responding (no heartbeat for " + secs(wait) +
            "): it died or was killed";
    } else if (!behind.empty()) {
      who = "rank " + rank_list(behind) + " is alive but has not reached this collective (it is at #" +
            std::to_string(behind_at) + "): it hangs, or runs a different program path";
    } else {
      who = "every rank is alive; the connection between them failed";
    }
  } catch (const std::exception&) {
    who = g.rank == 0 ? "the rendezvous store of this rank failed"
                      : "rank 0 is unreachable (its rendezvous store at " + g.master +
                            " does not answer): it died or was killed";
  }
  return head + ": " + who + ". Cause: " + cause;
}

void start_heartbeat(dd_dist::Group* g) {
  g->heartbeat = std::thread([g] {
    int64_t count = 0;
    std::unique_lock<std::mutex> lock(g->mutex);
    while (!g->stopping) {
      lock.unlock();
      try {
        g->store->set(beat_key(g->rank),
                      bytes(std::to_string(g->seq.load()) + " " + std::to_string(count++)));
      } catch (const std::exception&) {
        return;  // the store is gone (rank 0 ended): nothing left to tell
      }
      lock.lock();
      g->stop_cv.wait_for(lock, beat_interval(*g), [g] { return g->stopping; });
    }
  });
}

void stop_heartbeat(dd_dist::Group* g) {
  {
    std::lock_guard<std::mutex> lock(g->mutex);
    g->stopping = true;
  }
  g->stop_cv.notify_all();
  if (g->heartbeat.joinable()) g->heartbeat.join();
}

// Writes this rank's "WORLD_SIZE hash", then checks rank 0's and every other rank's.
void check_peers(dd_dist::Group& g, const std::string& hash) {
  const std::string me = std::to_string(g.rank);
  if (g.store->add("dd/claim/" + me, 1) > 1) {
    throw std::runtime_error("two processes were started with RANK " + me +
                             ": give every process its own RANK in 0.." +
                             std::to_string(g.world - 1));
  }
  g.store->set("dd/hello/" + me, bytes(std::to_string(g.world) + " " + hash));
  auto compare = [&](int r) {
    std::istringstream in(text(g.store->get("dd/hello/" + std::to_string(r))));
    int world = 0;
    std::string other;
    in >> world;
    in.get();  // the separating space; the hash may itself hold spaces
    std::getline(in, other);
    if (world != g.world) {
      throw std::runtime_error("rank " + std::to_string(r) + " was started with WORLD_SIZE " +
                               std::to_string(world) + " but rank " + me + " with " +
                               std::to_string(g.world) +
                               ": start every rank with the same WORLD_SIZE (--nproc x nodes)");
    }
    if (other != hash) {
      throw std::runtime_error("rank " + std::to_string(r) + " runs a different configuration (" +
                               other + ") from rank " + me + " (" + hash +
                               "): start every rank with the same command, flags and data");
    }
  };
  try {
    std::vector<std::string> keys;
    for (int r = 0; r < g.world; r++) keys.push_back("dd/hello/" + std::to_string(r));
    // Rank 0's announcement first: a wrong WORLD_SIZE on this rank shows at once.
    try {
      g.store->wait({keys[0]}, g.timeout);
    } catch (const std::exception& e) {
      throw std::runtime_error("rank 0 did not announce itself within " + secs(g.timeout) + ": " +
                               e.what());
    }
    compare(0);
    try {
      g.store->wait(keys, g.timeout);
    } catch (const std::exception& e) {
      std::vector<int> missing;
      try {
        for (int r = 0; r < g.world; r++) {
          if (!g.store->check({keys[r]})) missing.push_back(r);
        }
      } catch (const std::exception&) {
        throw std::runtime_error("lost the rendezvous store at " + g.master +
                                 " while waiting for the other ranks (rank 0 exited?): " + e.what());
      }
      throw std::runtime_error("rank " + rank_list(missing) + " of WORLD_SIZE " +
                               std::to_string(g.world) + " did not join within " + secs(g.timeout) +
                               ": start every rank, all with WORLD_SIZE " +
                               std::to_string(g.world));
    }
    for (int r = 1; r < g.world; r++) compare(r);
  } catch (const std::exception&) {
    // A mismatch is seen by the ranks at different moments: rank 0 keeps its store up for a
    // few seconds, until the failing ranks acknowledged, so they read rank 0's announcement
    // and name the mismatch themselves instead of only seeing the store vanish.
    try {
      if (g.rank != 0) {
        g.store->add("dd/failed", 1);
      } else {
        const auto deadline = std::chrono::steady_clock::now() +
                              std::min(g.timeout, std::chrono::milliseconds(3000));
        while (g.store->add("dd/failed", 0) < g.world - 1 &&
               std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    } catch (const std::exception&) {
      // the store is gone already
    }
    throw;
  }
}

void connect_group(dd_dist::Group& g, const std::string& addr, int32_t backend) {
  auto prefix = c10::make_intrusive<c10d::PrefixStore>("dd/pg", g.store);
  if (backend == DD_DIST_GLOO) {
#ifdef USE_C10D_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(g.timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (is_loopback(addr)) {
      // Every rank is on this machine: loopback works even when the hostname does not resolve.
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefix, g.rank, g.world, opts);
    return;
#endif
  } else if (backend == DD_DIST_NCCL) {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = g.timeout;
    g.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefix, g.rank, g.world, opts);
    return;
#endif
  }
  throw std::runtime_error(std::string("this shim was built without ") +
                           (backend == DD_DIST_NCCL ? "NCCL (a CUDA libtorch with nccl.h)"
                                                    : "Gloo (apt-get install libgloo-dev)") +
                           "; rebuild it with `deno task build:native --force`");
}

dd_dist::Group& G(dd_group h) { return *static_cast<dd_dist::Group*>(h); }
at::Tensor& T(int64_t h) { return *reinterpret_cast<at::Tensor*>(static_cast<intptr_t>(h)); }

// Host buffers travel as CPU tensors for Gloo, device tensors for NCCL.
at::Device host_device(const dd_dist::Group& g) {
  return g.pg->getBackendName() == "nccl" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
}

}  // namespace

namespace dd_dist {

int32_t fail(const std::string& msg) {
  g_error = msg;
  return 1;
}

void collective(Group& g, const char* name, const std::function<void()>& body) {
  const int64_t seq = ++g.seq;
  try {
    body();
  } catch (const std::exception& e) {
    throw std::runtime_error(describe_failure(g, name, seq, e.what()));
  }
}

}  // namespace dd_dist

extern "C" {

const char* dd_dist_last_error(void) { return g_error.c_str(); }

int32_t dd_dist_available(int32_t backend) {
#ifdef USE_C10D_GLOO
  if (backend == DD_DIST_GLOO) return 1;
#endif
#ifdef USE_C10D_NCCL
  if (backend == DD_DIST_NCCL) return 1;
#endif
  return 0;
}

int32_t dd_dist_init(const char* master_addr, int32_t port, int32_t rank, int32_t world_size,
                     int32_t backend, int32_t cuda_device, int64_t timeout_ms,
                     const char* config_hash, dd_group* group_out) {
  *group_out = nullptr;
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return fail("RANK " + std::to_string(rank) + " is outside 0..WORLD_SIZE-1 (WORLD_SIZE " +
                std::to_string(world_size) + ")");
  }
  if (port < 1 || port > 65535) return fail("MASTER_PORT " + std::to_string(port) + " is not a TCP port");
  if (timeout_ms < 1) return fail("the timeout must be at least 1 ms");
  if (!dd_dist_available(backend)) {
    return fail(backend == DD_DIST_NCCL
                    ? "this shim was built without NCCL (needs a CUDA libtorch and nccl.h)"
                    : "this shim was built without Gloo: apt-get install libgloo-dev, then "
                      "`deno task build:native --force`");
  }
  auto g = std::make_unique<dd_dist::Group>();
  g->rank = rank;
  g->world = world_size;
  g->timeout = std::chrono::milliseconds(timeout_ms);
  const std::string addr = master_addr ? master_addr : "";
  g->master = addr + ":" + std::to_string(port);
  const std::string who = "rank " + std::to_string(rank);
  try {
#ifdef USE_C10D_NCCL
    if (backend == DD_DIST_NCCL) c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
#else
    (void)cuda_device;
#endif
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0;
    opts.waitWorkers = false;
    opts.timeout = g->timeout;
    try {
      g->store = c10::make_intrusive<c10d::TCPStore>(addr, opts);
    } catch (const std::exception& e) {
      if (rank == 0) {
        return fail("rank 0 could not serve the rendezvous store on " + g->master + " (" +
                    e.what() + "); is the port in use by another job? Pick a free MASTER_PORT " +
                    "(--master-port)");
      }
      return fail(who + " could not reach the rendezvous store of rank 0 at " + g->master +
                  " within " + secs(g->timeout) + " (" + e.what() +
                  "); check MASTER_ADDR and MASTER_PORT, that rank 0 is running, and that the " +
                  "port is open between the machines");
    }
    check_peers(*g, config_hash ? config_hash : "");
    try {
      connect_group(*g, addr, backend);
    } catch (const std::exception& e) {
      return fail(who + " could not connect the process group within " + secs(g->timeout) +
                  " (" + e.what() + "); with several machines, set GLOO_SOCKET_IFNAME (Gloo) or " +
                  "NCCL_SOCKET_IFNAME (NCCL) to the interface that reaches the others");
    }
    start_heartbeat(g.get());
  } catch (const std::exception& e) {
    return fail(who + ": " + e.what());
  }
  *group_out = g.release();
  return 0;
}

void dd_dist_free(dd_group group) {
  if (!group) return;
  auto* g = static_cast<dd_dist::Group*>(group);
  stop_heartbeat(g);
  try {
    g->pg.reset();
    g->store.reset();
  } catch (...) {
    // Peers already gone: nothing to release remotely.
  }
  delete g;
}

int32_t dd_dist_all_reduce_mean(dd_group group, const int64_t* tensors, int32_t n,
                                int64_t bucket_bytes) {
  try {
    auto& g = G(group);
    if (n <= 0) return 0;
    struct Bucket {
      int32_t begin = 0, end = 0;
      at::Tensor flat;
      c10::intrusive_ptr<c10d::Work> work;
    };
    std::vector<Bucket> buckets;
    int64_t filled = 0;
    for (int32_t i = 0; i < n; i++) {
      const at::Tensor& t = T(tensors[i]);
      const bool same = !buckets.empty() &&
                        T(tensors[buckets.back().begin]).scalar_type() == t.scalar_type() &&
                        T(tensors[buckets.back().begin]).device() == t.device();
      if (buckets.empty() || !same || filled >= bucket_bytes) {
        buckets.push_back({i, i});
        filled = 0;
      }
      buckets.back().end = i + 1;
      filled += t.numel() * static_cast<int64_t>(t.element_size());
    }
    dd_dist::collective(g, "all_reduce", [&] {
      // Launch every bucket first: Gloo/NCCL reduce one while the next is being packed.
      for (auto& b : buckets) {
        std::vector<at::Tensor> parts;
        for (int32_t i = b.begin; i < b.end; i++) parts.push_back(T(tensors[i]).reshape({-1}));
        b.flat = at::cat(parts);
        std::vector<at::Tensor> io{b.flat};
        b.work = g.pg->allreduce(io);
      }
      for (auto& b : buckets) {
        b.work->wait();
        b.flat.div_(g.world);
        int64_t offset = 0;
        for (int32_t i = b.begin; i < b.end; i++) {
          at::Tensor& t = T(tensors[i]);
          const int64_t count = t.numel();
          t = b.flat.narrow(0, offset, count).view(t.sizes());
          offset += count;
        }
      }
    });
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int32_t dd_dist_broadcast(dd_group group, const int64_t* tensors, int32_t n, int32_t root) {
  try {
    auto& g = G(group);
    if (root < 0 || root >= g.world) return fail("broadcast root " + std::to_string(root) + " is not a rank");
    if (n <= 0) return 0;
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (int32_t i = 0; i < n; i++) parts.push_back(T(tensors[i]).detach().reshape({-1}));
    at::Tensor flat = at::cat(parts);
    dd_dist::collective(g, "broadcast", [&] {
      std::vector<at::Tensor> io{flat};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      g.pg->broadcast(io, opts)->wait();
    });
    if (g.rank != root) {
      int64_t offset = 0;
      for (int32_t i = 0; i < n; i++) {
        at::Tensor& t = T(tensors[i]);
        t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int32_t dd_dist_all_reduce_sum_f64(dd_group group, double* values, int32_t n) {
  try {
    auto& g = G(group);
    if (n <= 0) return 0;
    at::Tensor t = at::from_blob(values, {n}, at::kDouble).to(host_device(g), true, true);
    dd_dist::collective(g, "all_reduce (host)", [&] {
      std::vector<at::Tensor> io{t};
      g.pg->allreduce(io)->wait();
    });
    at::Tensor back = t.cpu().contiguous();
    std::memcpy(values, back.data_ptr<double>(), sizeof(double) * n);
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int32_t dd_dist_all_gather_f32(dd_group group, const float* src, int64_t n, float* dst) {
  try {
    auto& g = G(group);
    const at::Device dev = host_device(g);
    at::Tensor in = at::from_blob(const_cast<float*>(src), {n}, at::kFloat).to(dev, false, true);
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < g.world; r++) out[0].push_back(at::empty({n}, in.options()));
    dd_dist::collective(g, "all_gather", [&] {
      std::vector<at::Tensor> io{in};
      g.pg->allgather(out, io)->wait();
    });
    for (int r = 0; r < g.world; r++) {
      at::Tensor part = out[0][r].cpu().contiguous();
      std::memcpy(dst + r * n, part.data_ptr<float>(), sizeof(float) * n);
    }
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int32_t dd_dist_barrier(dd_group group) {
  try {
    auto& g = G(group);
    dd_dist::collective(g, "barrier", [&] { g.pg->barrier()->wait(); });
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // extern "C"
