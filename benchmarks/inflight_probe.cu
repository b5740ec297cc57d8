// How does a latency-bound kernel's read after its grid-dependency wait grow with a block's bytes?
// ntrans's row kernel reads 16-24 KB a block after its wait, one block an SM: two rows a block cost
// 0.4 us more (H100 run 257), a third fewer bytes a block (alpha loaded before the wait) only 0.01
// (run 250), and at 64 blocks the lines' being in L2 or not was worth 0.25 us (runs 259-260). This
// kernel is that read alone: `blocks` blocks of 128 threads, one an SM, calls back to back as
// programmatic dependents (each triggers right after its wait, as ntrans bs8 does), each call on its
// own copy of the data (copies past the L2), each thread N 16-byte loads issued together after the
// wait, their sum stored; N from 0 (the launch, trigger and wait alone) to 24 (48 KB a block), with
// and without each thread's lines prefetched into L2 before the wait. Linear in N: one SM's
// bandwidth; flat: one latency; a step: a limit on the bytes one SM has in flight. "barrier": a
// __syncthreads before the wait; "bulk copy": the same bytes brought into shared memory by the TMA
// unit (cp.async.bulk, an mbarrier), then read from there. H100 runs 263-264: nearly flat at 8
// blocks (prefetched: 0.91 us at 4 KB, 1.22 at 48; the bare launch 0.55), no barrier effect, bulk
// copies slower (run 261, on another machine, had shown steps: NOTES.md session 45).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o inflight_probe inflight_probe.cu && ./inflight_probe
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"

constexpr int THREADS = 128;

__device__ unsigned shared_address(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

// The block's N * 2 KB into shared memory by the TMA unit (4 KB a copy, issued by warp 0's lanes),
// every thread waiting on the mbarrier for all of its bytes.
template <int N>
__device__ void bulk_copy(const uint4* block, uint4* staged, unsigned long long* landed) {
  constexpr unsigned bytes = N * THREADS * 16, piece = 4096;
  if (threadIdx.x == 0)
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(shared_address(landed)), "r"(bytes) : "memory");
  __syncwarp();
  if (threadIdx.x < 32)
    for (unsigned at = threadIdx.x * piece; at < bytes; at += 32 * piece)
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                   :: "r"(shared_address((const char*)staged + at)), "l"((const char*)block + at),
                      "r"(min(piece, bytes - at)), "r"(shared_address(landed)) : "memory");
  unsigned done = 0;
  while (!done)
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0; selp.u32 %0, 1, 0, p; }\n"
                 : "=r"(done) : "r"(shared_address(landed)) : "memory");
}

template <int N>
__global__ void __launch_bounds__(THREADS) read_after_wait(const uint4* in, unsigned* out, int prefetch, int bulk, int sync) {
  extern __shared__ uint4 staged[];  // the bulk copy's destination (the launch holds 120 KB: one block an SM)
  __shared__ alignas(8) unsigned long long landed;
  const uint4* block = in + (size_t)blockIdx.x * N * THREADS;
  if (prefetch) {  // each 128-byte line once: 8 chunks a line
    for (int line = threadIdx.x; line < N * THREADS / 8; line += THREADS)
      asm volatile("prefetch.global.L2 [%0];\n" :: "l"(block + line * 8));
  }
  if (bulk && threadIdx.x == 0) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" :: "r"(shared_address(&landed)));
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if (sync) __syncthreads();
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  uint4 v[N > 0 ? N : 1];
  if (bulk) {
    if constexpr (N > 0) bulk_copy<N>(block, staged, &landed);
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = staged[k * THREADS + threadIdx.x];
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = block[k * THREADS + threadIdx.x];
  }
  unsigned sum = 0;  // every word used, so that every load is 16 bytes
#pragma unroll
  for (int k = 0; k < N; ++k) sum += v[k].x + v[k].y + v[k].z + v[k].w;
  out[blockIdx.x * THREADS + threadIdx.x] = sum;
}

template <int N>
void run(int blocks, size_t l2, cudaStream_t stream, unsigned* out) {
  const size_t bytes = (size_t)blocks * (N > 0 ? N : 1) * THREADS * 16;
  const int copies = (int)std::min<size_t>(4096, 3 * l2 / bytes + 1);  // past the L2 (x1.5 at least)
  std::vector<char*> data = device_copies(copies, bytes);
  // one block an SM, as ntrans's spread launch holds it
  CHECK(cudaFuncSetAttribute(read_after_wait<N>, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {dim3(blocks), dim3(THREADS), 120 * 1024, stream, &attribute, 1};
  for (int mode = 0; mode < (N > 0 ? 6 : 2); ++mode) {  // loads without and with a barrier first, bulk copies
    const int prefetch = mode % 2, bulk = mode / 4, sync = mode / 2 > 0;
    float us = median_replay_us(stream, 1, [&](int) {
      for (int c = 0; c < copies; ++c)
        CHECK(cudaLaunchKernelEx(&config, read_after_wait<N>, (const uint4*)data[c], out, prefetch, bulk, sync));
    }) / copies;
    unsigned first;  // what thread 0 of block 0 read: 4 N words of bytes 1
    CHECK(cudaMemcpy(&first, out, 4, cudaMemcpyDeviceToHost));
    const bool read = first == 4u * N * 0x01010101u;
    printf("| %d | %d | %d | %s%s | %s | %d | %.3f%s |\n", blocks, N, N * THREADS * 16 / 1024,
           prefetch ? "L2 prefetch" : "none", sync ? ", barrier" : "", bulk ? "bulk copy" : "loads", copies, us,
           read ? "" : " (WRONG DATA)");
  }
  for (auto c : data) CHECK(cudaFree(c));
}

int main() {
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  int l2;
  CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  unsigned* out;
  CHECK(cudaMalloc(&out, 132 * THREADS * sizeof(unsigned)));
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("%s\n| blocks | loads a thread | KB a block | before the wait | after it | copies | us a call |\n|---|---|---|---|---|---|---|\n",
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
