// How does a latency-bound kernel's read after its grid-dependency wait grow with a block's bytes?
// ntrans's row kernel reads 16-24 KB a block after its wait, one block an SM: two rows a block cost
// 0.4 us more (H100 run 257), a third fewer bytes a block (alpha loaded before the wait) only 0.01
// (run 250), and at 64 blocks the lines' being in L2 or not was worth 0.25 us (runs 259-260). This
// kernel is that read alone: `blocks` blocks of 128 threads, one an SM, calls back to back as
// programmatic dependents (each triggers right after its wait, as ntrans bs8 does), each call on its
// own copy of the data (copies past the L2), each thread N 16-byte loads issued together after the
// wait, their sum stored; N from 0 (the launch, trigger and wait alone) to 24 (48 KB a block), with
// and without each thread's lines prefetched into L2 before the wait. Linear in N: one SM's
// bandwidth; flat: one latency; a step: a limit on the bytes one SM has in flight.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o inflight_probe inflight_probe.cu && ./inflight_probe
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"

constexpr int THREADS = 128;

template <int N>
__global__ void __launch_bounds__(THREADS) read_after_wait(const uint4* in, float* out, int prefetch) {
  const uint4* block = in + (size_t)blockIdx.x * N * THREADS;
  if (prefetch) {  // each 128-byte line once: 8 chunks a line
    for (int line = threadIdx.x; line < N * THREADS / 8; line += THREADS)
      asm volatile("prefetch.global.L2 [%0];\n" :: "l"(block + line * 8));
  }
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  uint4 v[N > 0 ? N : 1];
#pragma unroll
  for (int k = 0; k < N; ++k) v[k] = block[k * THREADS + threadIdx.x];
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < N; ++k) sum += __int_as_float(v[k].x ^ v[k].y ^ v[k].z ^ v[k].w);
  out[blockIdx.x * THREADS + threadIdx.x] = sum;
}

template <int N>
void run(int blocks, size_t l2, cudaStream_t stream, float* out) {
  const size_t bytes = (size_t)blocks * (N > 0 ? N : 1) * THREADS * 16;
  const int copies = (int)std::min<size_t>(4096, 3 * l2 / bytes + 1);  // past the L2 (x1.5 at least)
  std::vector<char*> data = device_copies(copies, bytes);
  // one block an SM, as ntrans's spread launch holds it
  CHECK(cudaFuncSetAttribute(read_after_wait<N>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {dim3(blocks), dim3(THREADS), 120 * 1024, stream, &attribute, 1};
  for (int prefetch = 0; prefetch < (N > 0 ? 2 : 1); ++prefetch) {
    float us = median_replay_us(stream, 1, [&](int) {
      for (int c = 0; c < copies; ++c)
        CHECK(cudaLaunchKernelEx(&config, read_after_wait<N>, (const uint4*)data[c], out, prefetch));
    }) / copies;
    printf("| %d | %d | %d | %s | %d | %.3f |\n", blocks, N, N * THREADS * 16 / 1024, prefetch ? "L2 prefetch" : "none",
           copies, us);
  }
  for (auto c : data) CHECK(cudaFree(c));
}

int main() {
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  int l2;
  CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  float* out;
  CHECK(cudaMalloc(&out, 132 * THREADS * sizeof(float)));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("%s\n| blocks | loads a thread | KB a block | before the wait | copies | us a call |\n|---|---|---|---|---|---|\n",
         prop.name);
  for (int blocks : {8, 64}) {
    run<0>(blocks, l2, stream, out);
    run<2>(blocks, l2, stream, out);
    run<4>(blocks, l2, stream, out);
    run<8>(blocks, l2, stream, out);
    run<12>(blocks, l2, stream, out);
    run<16>(blocks, l2, stream, out);
    run<24>(blocks, l2, stream, out);
  }
  return 0;
}
