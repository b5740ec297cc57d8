// Does an L2 prefetch of a kernel's activations, issued before its grid-dependency wait, take the DRAM
// round trip off a latency-bound call's path? ntrans and lora read X only after griddepcontrol.wait
// (the work before may write it), so each call waits for X from DRAM after the call before ends. A
// prefetch into L2 is safe before the wait: L2 is where global memory is coherent (a write by the
// work before lands there; prefetch.global.L2 fills no L1), so the load after the wait reads the
// latest X, from L2 when the prefetch has landed. An ntrans-like kernel: one block per row of X and H
// [rows, 4096] f16, each thread 16 bytes of each in registers, two row sums (shuffles, one barrier
// each), the output row stored; calls back to back as programmatic dependents, each on its own copy
// of the inputs (copies past twice the L2, as benchmarks/gpu.py rotates them), in modes
//   empty     the launch, trigger and wait alone;
//   plain     X and H loaded after the wait;
//   prefetch  each thread's 128-byte lines of X and H prefetched into L2 before the wait.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o prefetch_probe prefetch_probe.cu && ./prefetch_probe
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"

constexpr int K = 4096, THREADS = 256, CHUNK = 8;  // 16 bytes of 8 halves, two a thread per row
enum Mode { EMPTY, PLAIN, PREFETCH };

__device__ float block_sum(float v, float* scratch) {
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float s = 0.f;
  for (int w = 0; w < THREADS / 32; ++w) s += scratch[w];
  __syncthreads();
  return s;
}

__global__ void __launch_bounds__(THREADS) ntrans_like(const __half* x, const __half* h, __half* out, int mode) {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  __shared__ float scratch[THREADS / 32];
  const size_t row = (size_t)blockIdx.x * K;
  if (mode == PREFETCH) {  // 2 x 8 KB a row: 64 lines of 128 bytes each, threads 0-63 and 64-127
    const char* base = (const char*)((threadIdx.x < 64 ? x : h) + row) + (threadIdx.x % 64) * 128;
    if (threadIdx.x < 128) asm volatile("prefetch.global.L2 [%0];\n" :: "l"(base));
  }
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  if (mode == EMPTY) return;
  float xs[2 * CHUNK], hs[2 * CHUNK], sq = 0.f;
  for (int half = 0; half < 2; ++half) {  // 2 x 16 bytes of each row a thread: 256 threads x 16 halves
    const size_t at = row + (size_t)(half * THREADS + threadIdx.x) * CHUNK;
    uint4 xv = *(const uint4*)(x + at), hv = *(const uint4*)(h + at);
    const __half* xp = (const __half*)&xv;
    const __half* hp = (const __half*)&hv;
    for (int j = 0; j < CHUNK; ++j) {
      xs[half * CHUNK + j] = __half2float(xp[j]);
      hs[half * CHUNK + j] = __half2float(hp[j]);
      sq += xs[half * CHUNK + j] * xs[half * CHUNK + j];
    }
  }
  const float inv = rsqrtf(block_sum(sq, scratch) / K + 1e-6f);
  float sq2 = 0.f;
  for (int j = 0; j < 2 * CHUNK; ++j) {
    xs[j] = hs[j] + 0.5f * (xs[j] * inv - hs[j]);
    sq2 += xs[j] * xs[j];
  }
  const float inv2 = rsqrtf(block_sum(sq2, scratch) / K + 1e-6f);
  for (int half = 0; half < 2; ++half) {
    __align__(16) __half o[CHUNK];
    for (int j = 0; j < CHUNK; ++j) o[j] = __float2half(xs[half * CHUNK + j] * inv2);
    *(uint4*)(out + row + (size_t)(half * THREADS + threadIdx.x) * CHUNK) = *(const uint4*)o;
  }
}

int main() {
  const char* names[] = {"empty", "plain", "prefetch"};
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  int l2;
  CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  printf("| rows | copies | mode | us a call |\n|---|---|---|---|\n");
  for (int rows : {8, 64}) {
    const size_t bytes = (size_t)rows * K * 2;
    const int copies = (int)std::min<size_t>(2048, 4 * (size_t)l2 / (2 * bytes) + 1);  // X and H past 2x L2
    std::vector<__half*> xs(copies), hs(copies);
    for (int c = 0; c < copies; ++c) {
      CHECK(cudaMalloc(&xs[c], bytes));
      CHECK(cudaMalloc(&hs[c], bytes));
      CHECK(cudaMemset(xs[c], 0x3c, bytes));  // halves near 1
      CHECK(cudaMemset(hs[c], 0x3c, bytes));
    }
    __half* out;
    CHECK(cudaMalloc(&out, bytes));
    cudaLaunchAttribute attribute;
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {dim3(rows), dim3(THREADS), 0, stream, &attribute, 1};
    for (int mode = EMPTY; mode <= PREFETCH; ++mode) {
      float us = median_replay_us(stream, 1, [&](int) {
        for (int c = 0; c < copies; ++c) CHECK(cudaLaunchKernelEx(&config, ntrans_like, xs[c], hs[c], out, mode));
      }) / copies;
      printf("| %d | %d | %s | %.3f |\n", rows, copies, names[mode], us);
    }
    for (int c = 0; c < copies; ++c) {
      CHECK(cudaFree(xs[c]));
      CHECK(cudaFree(hs[c]));
    }
    CHECK(cudaFree(out));
  }
  return 0;
}
