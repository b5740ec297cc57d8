// Does loading X once per thread block cluster (multicast) take gated_mlp bs8's 2-split plan off the
// SMs' intake of X's re-reads? ring_probe.cu's `xrows` times that plan's geometry with X tiles of 0-64
// rows copied by every block (X re-read from L2 by each of 64 column tiles: 33 MB beside W's 67).
// Here the same geometry (128 blocks, one an SM, each a 256-byte strip of [4096, 8192] f16 over half
// of K, 4 stages of K tiles of 128, 256 threads) takes W by cp.async as there, and X by
// cp.async.bulk into the ring's slot, completing on an mbarrier: with clusters of 1 each block copies
// all of X's rows; with clusters of 2 and 4 (adjacent column tiles of one K half) each block copies
// its share of the rows and multicasts it into every block of its cluster, so L2 serves X once per
// cluster. A slot's X part is refilled only when every block of the cluster has summed it (an
// "empty" mbarrier per stage that each block's thread 0 arrives on, in every block of the cluster:
// CUTLASS's producer / consumer pipeline).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o multicast_probe multicast_probe.cu
//   ./multicast_probe
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"
#include "probe_ring.cuh"  // cp_async16, THREADS (256), STAGES (4)

constexpr int COPIES = 8;
constexpr int K = 4096, N = 8192, ROW_BYTES = 256, SPLITS = 2, K_TILE = 128, ITERS = K / SPLITS / K_TILE;
constexpr int MAX_X_ROWS = 64;
constexpr int X_ROW_BYTES = K_TILE * 2;  // one X row's part of a K tile: one bulk copy

__device__ __forceinline__ unsigned smem_addr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void wait_parity(uint64_t* bar, unsigned parity) {
  asm volatile("{\n .reg .pred p;\n WAIT:\n mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra WAIT;\n}\n"
               :: "r"(smem_addr(bar)), "r"(parity) : "memory");
}

__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}

__global__ void __launch_bounds__(THREADS) multicast_kernel(const char* __restrict__ w, const char* __restrict__ x,
                                                            int x_rows, int cluster, float* out) {
  extern __shared__ __align__(128) char ring[];
  __shared__ __align__(8) uint64_t full[STAGES], empty[STAGES];
  const size_t pitch = (size_t)N * 2;
  const int w_bytes = K_TILE * ROW_BYTES, x_bytes = x_rows * X_ROW_BYTES, stage = w_bytes + x_bytes;
  const int chunks_per_row = ROW_BYTES / 16, rows_each = x_rows / cluster;
  const unsigned rank = cluster_rank(), everyone = (1u << cluster) - 1;
  const size_t first_row = (size_t)blockIdx.y * K_TILE * ITERS;
  const char* p = w + (size_t)blockIdx.x * ROW_BYTES + first_row * pitch;
  if (threadIdx.x == 0)
    for (int s = 0; s < STAGES; ++s) {
      asm volatile("mbarrier.init.shared.b64 [%0], 1;\n" :: "r"(smem_addr(&full[s])));
      asm volatile("mbarrier.init.shared.b64 [%0], %1;\n" :: "r"(smem_addr(&empty[s])), "r"(cluster));
    }
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  cluster_sync();  // every block's barriers exist before any block multicasts into them

  auto issue = [&](int i) {
    const int s = i % STAGES;
    char* slot = ring + s * stage;
    for (int c = threadIdx.x; c < w_bytes / 16; c += THREADS) {
      int r = c / chunks_per_row, q = c % chunks_per_row;
      cp_async16(slot + c * 16, p + ((size_t)i * K_TILE + r) * pitch + q * 16);
    }
    if (x_rows == 0) return;
    if (threadIdx.x == 0)  // this block's slot receives all X rows, from every block of the cluster
      asm volatile("mbarrier.arrive.expect_tx.shared.b64 _, [%0], %1;\n" :: "r"(smem_addr(&full[s])), "r"(x_bytes)
                   : "memory");
    if (threadIdx.x < rows_each) {
      if (i >= STAGES) wait_parity(&empty[s], (i / STAGES - 1) & 1);  // every block has summed the slot
      const int r = rank * rows_each + threadIdx.x;
      const char* src = x + (size_t)r * K * 2 + (first_row + (size_t)i * K_TILE) * 2;
      const unsigned dst = smem_addr(slot + w_bytes + r * X_ROW_BYTES), bar = smem_addr(&full[s]);
      if (cluster == 1)
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                     :: "r"(dst), "l"(src), "n"(X_ROW_BYTES), "r"(bar) : "memory");
      else
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
                     " [%0], [%1], %2, [%3], %4;\n"
                     :: "r"(dst), "l"(src), "n"(X_ROW_BYTES), "r"(bar), "h"((unsigned short)everyone) : "memory");
    }
  };

  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ITERS) issue(s);
    asm volatile("cp.async.commit_group;\n");
  }
  float acc = 0.f;
  for (int it = 0; it < ITERS; ++it) {
    const int s = it % STAGES;
    if (it + STAGES - 1 < ITERS) issue(it + STAGES - 1);
    asm volatile("cp.async.commit_group;\n");
    asm volatile("cp.async.wait_group %0;\n" :: "n"(STAGES - 1));
    if (x_rows) wait_parity(&full[s], (it / STAGES) & 1);
    __syncthreads();
    const float* f = (const float*)(ring + s * stage);
    for (int c = threadIdx.x; c < stage / 4; c += THREADS) acc += f[c];
    __syncthreads();
    if (x_rows && threadIdx.x < cluster) {  // thread t frees the slot in block t of the cluster
      unsigned remote;
      asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smem_addr(&empty[s])), "r"(threadIdx.x));
      asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" :: "r"(remote) : "memory");
    }
  }
  cluster_sync();  // no block leaves while another may still arrive on its barriers
  if (acc == 1.2345f) out[0] = acc;  // keeps the loads alive
}

int main() {
  const size_t bytes = (size_t)K * N * 2;
  std::vector<char*> copies = device_copies(COPIES, bytes);
  const ProbeSetup setup = probe_setup(MAX_X_ROWS * K * 2);  // a lambda captures no structured binding (C++17)
  char* const x = setup.x;
  float* const out = setup.out;
  const cudaStream_t stream = setup.stream;
  CHECK(cudaFuncSetAttribute(multicast_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             STAGES * (K_TILE * ROW_BYTES + MAX_X_ROWS * X_ROW_BYTES)));  // 192 KiB, beside its static barriers
  const dim3 grid(N / (ROW_BYTES / 2), SPLITS);
  printf("| X rows | cluster | MB read (W, X once a cluster) | us | GB/s a block |\n|---|---|---|---|---|\n");
  for (int x_rows : {0, 8, 64})
    for (int cluster : {1, 2, 4}) {
      if (x_rows == 0 && cluster > 1) continue;
      cudaLaunchAttribute attribute;
      attribute.id = cudaLaunchAttributeClusterDimension;
      attribute.val.clusterDim = {(unsigned)cluster, 1, 1};
      const size_t smem = STAGES * (K_TILE * ROW_BYTES + x_rows * X_ROW_BYTES);
      cudaLaunchConfig_t config = {grid, dim3(THREADS), smem, stream, &attribute, 1};
      float us = median_replay_us(stream, COPIES, [&](int copy) {
        CHECK(cudaLaunchKernelEx(&config, multicast_kernel, (const char*)copies[copy], (const char*)x, x_rows, cluster, out));
      });
      // X's bytes each block receives (multicast or not) and what L2 serves of them
      const double x_in = (double)grid.x * grid.y * x_rows * (K / SPLITS) * 2, taken = bytes + x_in;
      printf("| %d | %d | %.1f | %.2f | %.1f |\n", x_rows, cluster, (bytes + x_in / cluster) / 1e6, us,
             taken / (grid.x * grid.y) / (us * 1e-6) / 1e9);
    }
  CHECK(cudaGetLastError());
  return 0;
}
