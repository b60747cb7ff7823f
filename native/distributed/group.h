// The state behind a dd_group, shared by process_group.cpp and sync_batch_norm.cpp.
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace dd_dist {

// libtorch 2.x moved the collectives of a concrete backend from ProcessGroup to c10d::Backend.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

struct Group {
  int rank = 0;
  int world = 1;
  std::string master;  // "addr:port", for messages
  std::chrono::milliseconds timeout{300000};
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<Collectives> pg;
  // Number of collectives this rank has entered; published by the heartbeat so that a failure
  // can tell a dead rank (heartbeat stopped) from a stuck one (alive, fewer collectives).
  std::atomic<int64_t> seq{0};
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable stop_cv;
  bool stopping = false;
};

// Runs one collective (numbered by g.seq). A failure is rethrown as a std::runtime_error whose
// message names the collective and, when it can be found out, the rank that died or hangs.
void collective(Group& g, const char* name, const std::function<void()>& body);

// Records msg as the calling thread's dd_dist_last_error() and returns the failure status 1.
int32_t fail(const std::string& msg);

}  // namespace dd_dist
