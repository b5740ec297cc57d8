// One launch timed as gpu.py's replays see it: a CUDA graph per copy of the data (copies rotated
// past L2, `device_copies`), 20 replays after 3 warm-ups, the median in microseconds. The including
// file defines CHECK.
#pragma once

#include <algorithm>
#include <vector>
#include <cuda_runtime.h>

// `copies` device buffers of `bytes` (a weight's copies, each byte 1).
inline std::vector<char*> device_copies(int copies, size_t bytes) {
  std::vector<char*> out(copies);
  for (auto& c : out) {
    CHECK(cudaMalloc(&c, bytes));
    CHECK(cudaMemset(c, 1, bytes));
  }
  return out;
}

// What a streaming probe launches with: `x_bytes` of zeros (the X tiles beside W's), a 4-byte sink for
// the sums that keep the loads alive, and a stream.
struct ProbeSetup {
  char* x;
  float* out;
  cudaStream_t stream;
};

inline ProbeSetup probe_setup(size_t x_bytes) {
  ProbeSetup p;
  CHECK(cudaMalloc(&p.x, x_bytes));
  CHECK(cudaMemset(p.x, 0, x_bytes));
  CHECK(cudaMalloc(&p.out, 4));
  CHECK(cudaStreamCreate(&p.stream));
  return p;
}

// `launch(copy)` issues the kernel for one copy on `stream`.
template <typename Launch>
float median_replay_us(cudaStream_t stream, int copies, Launch launch) {
  std::vector<cudaGraphExec_t> exec(copies);
  for (int copy = 0; copy < copies; ++copy) {
    cudaGraph_t graph;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    launch(copy);
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaGraphInstantiate(&exec[copy], graph, 0));
    CHECK(cudaGraphDestroy(graph));
  }
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> times;
  for (int rep = 0; rep < 23; ++rep) {
    CHECK(cudaEventRecord(a, stream));
    CHECK(cudaGraphLaunch(exec[rep % copies], stream));
    CHECK(cudaEventRecord(b, stream));
    CHECK(cudaEventSynchronize(b));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    if (rep >= 3) times.push_back(ms * 1e3f);
  }
  std::sort(times.begin(), times.end());
  for (auto& instance : exec) CHECK(cudaGraphExecDestroy(instance));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  return times[times.size() / 2];
}
