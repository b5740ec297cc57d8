// How fast can one SM stream from device memory, and with what instructions?
// A probe for the weight-streaming kernels (benchmarks/NOTES.md): each block reads its own
// contiguous slice of a 1 GiB buffer and reduces it (so the loads are not dead), with
//   ld      16-byte ld.global.v4 loads, 8 per thread in flight;
//   cpasync a ring of 4 shared-memory stages filled by 16-byte cp.async.cg;
//   bulk    a ring of 4 stages filled by cp.async.bulk (the copy engine), one thread issuing
//           16 KiB per stage, completion on an mbarrier;
// at grids of 66, 96, 132, 264 and 1056 blocks. Prints GB/s in all and per block.
//   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o stream_probe stream_probe.cu && ./stream_probe
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_ring.cuh"

constexpr int STAGE = 16384;  // bytes per ring stage

__global__ void ld_kernel(const uint4* __restrict__ in, size_t per_block, float* out) {
  const uint4* p = in + blockIdx.x * (per_block / 16);
  float acc = 0.f;
  size_t n = per_block / 16;
  for (size_t i = threadIdx.x; i < n; i += THREADS * 8) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = (i + u * THREADS < n) ? p[i + u * THREADS] : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc += __uint_as_float(v[u].x ^ v[u].y ^ v[u].z ^ v[u].w);
  }
  if (acc == 1.2345f) out[0] = acc;
}

__global__ void cpasync_kernel(const char* __restrict__ in, size_t per_block, float* out) {
  extern __shared__ __align__(128) char ring[];
  const char* p = in + blockIdx.x * per_block;
  float acc = ring_stream(ring, STAGE, per_block / STAGE, [&](int i) {
    for (int c = threadIdx.x; c < STAGE / 16; c += THREADS)
      cp_async16(ring + (i % STAGES) * STAGE + c * 16, p + (size_t)i * STAGE + c * 16);
  });
  if (acc == 1.2345f) out[0] = acc;
}

// The same ring over a column strip of a row-major matrix (row pitch `pitch` bytes): each stage
// holds STAGE / row_bytes rows of `row_bytes` contiguous bytes, as a weight tile does.
__global__ void cpasync2d_kernel(const char* __restrict__ in, size_t per_block, int row_bytes, size_t pitch,
                                 float* out) {
  extern __shared__ __align__(128) char ring[];
  const char* p = in + (size_t)blockIdx.x * row_bytes;  // this block's columns
  int rows_per_stage = STAGE / row_bytes, chunks_per_row = row_bytes / 16;
  float acc = ring_stream(ring, STAGE, per_block / STAGE, [&](int i) {
    for (int c = threadIdx.x; c < STAGE / 16; c += THREADS) {
      int r = c / chunks_per_row, q = c % chunks_per_row;
      cp_async16(ring + (i % STAGES) * STAGE + c * 16, p + ((size_t)i * rows_per_stage + r) * pitch + q * 16);
    }
  });
  if (acc == 1.2345f) out[0] = acc;
}

__global__ void bulk_kernel(const char* __restrict__ in, size_t per_block, float* out) {
  extern __shared__ __align__(128) char ring[];
  __shared__ __align__(8) uint64_t bar[STAGES];
  const char* p = in + blockIdx.x * per_block;
  int iters = per_block / STAGE;
  float acc = 0.f;
  if (threadIdx.x == 0)
    for (int s = 0; s < STAGES; ++s)
      asm volatile("mbarrier.init.shared.b64 [%0], 1;\n" :: "r"((unsigned)__cvta_generic_to_shared(&bar[s])));
  asm volatile("fence.mbarrier_init.release.cluster;\n");
  __syncthreads();
  auto issue = [&](int i) {
    int s = i % STAGES;
    unsigned b = (unsigned)__cvta_generic_to_shared(&bar[s]);
    unsigned d = (unsigned)__cvta_generic_to_shared(ring + s * STAGE);
    asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;\n" :: "r"(b), "n"(STAGE));
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 :: "r"(d), "l"(p + (size_t)i * STAGE), "n"(STAGE), "r"(b) : "memory");
  };
  if (threadIdx.x == 0)
    for (int i = 0; i < STAGES - 1 && i < iters; ++i) issue(i);
  for (int it = 0; it < iters; ++it) {
    int s = it % STAGES;
    unsigned b = (unsigned)__cvta_generic_to_shared(&bar[s]);
    unsigned parity = (it / STAGES) & 1;
    asm volatile("{\n .reg .pred p;\n WAIT:\n mbarrier.try_wait.parity.shared.b64 p, [%0], %1;\n @!p bra WAIT;\n}\n"
                 :: "r"(b), "r"(parity));
    const float* f = (const float*)(ring + s * STAGE);
    for (int c = threadIdx.x; c < STAGE / 4; c += THREADS) acc += f[c];
    __syncthreads();  // every thread is done with stage it - 1's slot before it is refilled
    if (threadIdx.x == 0 && it + STAGES - 1 < iters) issue(it + STAGES - 1);
  }
  if (acc == 1.2345f) out[0] = acc;
}

int main() {
  size_t total = size_t(1) << 30;
  char* in;
  float* out;
  CHECK(cudaMalloc(&in, total));
  CHECK(cudaMalloc(&out, 4));
  CHECK(cudaMemset(in, 1, total));
  CHECK(cudaFuncSetAttribute(cpasync_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, STAGES * STAGE));
  CHECK(cudaFuncSetAttribute(bulk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, STAGES * STAGE));
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  auto best_ms = [&](auto launch) {  // the fastest of 5 launches, in milliseconds
    float best = 1e30f;
    for (int rep = 0; rep < 5; ++rep) {
      cudaEventRecord(a);
      launch();
      cudaEventRecord(b);
      CHECK(cudaEventSynchronize(b));
      CHECK(cudaGetLastError());
      float ms;
      cudaEventElapsedTime(&ms, a, b);
      if (ms < best) best = ms;
    }
    return best;
  };
  const char* names[3] = {"ld", "cpasync", "bulk"};
  int grids[5] = {66, 96, 132, 264, 1056};
  printf("| kernel | blocks | GB/s | GB/s per block |\n|---|---|---|---|\n");
  for (int k = 0; k < 3; ++k) {
    for (int g : grids) {
      size_t per_block = (total / g) / STAGE * STAGE;
      float best = best_ms([&] {
        if (k == 0) ld_kernel<<<g, THREADS>>>((const uint4*)in, per_block, out);
        if (k == 1) cpasync_kernel<<<g, THREADS, STAGES * STAGE>>>(in, per_block, out);
        if (k == 2) bulk_kernel<<<g, THREADS, STAGES * STAGE>>>(in, per_block, out);
      });
      double gbs = per_block * (double)g / (best * 1e-3) / 1e9;
      printf("| %s | %d | %.0f | %.1f |\n", names[k], g, gbs, gbs / g);
    }
  }
  // column strips of a [rows, pitch] matrix, as a weight W [K, N] f16 is tiled by columns
  CHECK(cudaFuncSetAttribute(cpasync2d_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, STAGES * STAGE));
  printf("\n| strip rows of | blocks | GB/s | GB/s per block |\n|---|---|---|---|\n");
  int rows_bytes[4] = {32, 64, 128, 256};
  for (int rb : rows_bytes) {
    for (int g : {96, 132, 192, 264}) {
      size_t pitch = (size_t)rb * g;  // the blocks' strips side by side make up each row
      size_t rows = total / pitch / (STAGE / rb) * (STAGE / rb);
      size_t per_block = rows * rb;
      float best = best_ms([&] { cpasync2d_kernel<<<g, THREADS, STAGES * STAGE>>>(in, per_block, rb, pitch, out); });
      double gbs = per_block * (double)g / (best * 1e-3) / 1e9;
      printf("| %d B | %d | %.0f | %.1f |\n", rb, g, gbs, gbs / g);
    }
  }
  return 0;
}
