// How do the cp.async ring's depth, its stage size and the block size change one launch's stream?
// gemv_probe.cu fixed the ring (4 stages of 16 KiB, 256 threads) and varied the grid; the searched
// plans vary the ring too (LayerNorm + Linear's projection: 2 stages of 64 KiB, one block per SM).
// This probe reads column strips of W [4096, N] f16 (row-major, as the weights are) with every
// combination of strip width, K split, stage size, ring depth and threads, each timed as a CUDA graph
// of one launch (what gpu.py's replays see; median of 20 replays, 8 copies of W rotated past L2),
// optionally with a 16-row X tile per stage (the matmul's other operand, L2 hits) beside W's. The
// ring is probe_ring.cuh's (run 82 timed a first copy of it that summed each stage as float4; run 85
// this file: the same ceilings, 11.9 and 15.6 us, and one block per SM 18.2-18.9 us on 50 MB).
// `./ring_probe xrows`: only gated_mlp bs8's 2-split geometry (128 blocks, one an SM, each a 256-byte
// strip of [4096, 8192] over half of K: W1's and W3's 64 columns side by side, 4 stages of K tiles of 128)
// with X tiles of 0-64 rows: is its stream bound by the bytes the SMs take in (X re-read from L2 by every
// column tile: 33 MB at 64 rows beside W's 67), or do L2 hits come free?
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o ring_probe ring_probe.cu && ./ring_probe
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"
#include "probe_ring.cuh"

constexpr int COPIES = 8;
constexpr int K = 4096;
constexpr int X_ROWS = 16;  // the sweep's X tile
constexpr int MAX_X_ROWS = 64;

// Block (x, y) streams columns [x row_bytes, (x+1) row_bytes) of K slice y in `iters` stages of
// k_tile rows, Stages - 1 stages ahead; each stage also copies X [x_rows, k_tile] (f16), if x_rows > 0.
template <int Stages, int Threads>
__global__ void __launch_bounds__(Threads) ring_kernel(const char* __restrict__ w, size_t pitch, int row_bytes,
                                                      int k_tile, int iters, const char* __restrict__ x, int x_rows,
                                                      float* out) {
  extern __shared__ __align__(128) char ring[];
  const int w_bytes = k_tile * row_bytes, x_bytes = x_rows * k_tile * 2, stage = w_bytes + x_bytes;
  const int chunks_per_row = row_bytes / 16, x_chunks_per_row = k_tile * 2 / 16;
  const size_t first_row = (size_t)blockIdx.y * k_tile * iters;
  const char* p = w + (size_t)blockIdx.x * row_bytes + first_row * pitch;
  float acc = ring_stream<Stages, Threads>(ring, stage, iters, [&](int i) {
    char* slot = ring + (i % Stages) * stage;
    for (int c = threadIdx.x; c < w_bytes / 16; c += Threads) {
      int r = c / chunks_per_row, q = c % chunks_per_row;
      cp_async16(slot + c * 16, p + ((size_t)i * k_tile + r) * pitch + q * 16);
    }
    for (int c = threadIdx.x; c < x_bytes / 16; c += Threads) {
      int r = c / x_chunks_per_row, q = c % x_chunks_per_row;
      cp_async16(slot + w_bytes + c * 16, x + (size_t)r * K * 2 + (first_row + (size_t)i * k_tile) * 2 + q * 16);
    }
  });
  if (acc == 1.2345f) out[0] = acc;  // keeps the loads alive
}

using Kernel = void (*)(const char*, size_t, int, int, int, const char*, int, float*);

template <int S, int T>
Kernel instance() {
  CHECK(cudaFuncSetAttribute(ring_kernel<S, T>, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  return ring_kernel<S, T>;
}

struct Row {
  int n, cols, splits, stage_kb, stages, threads, x_tile, resident;
  float us;
};

int main(int argc, char** argv) {
  int device_sms;
  CHECK(cudaDeviceGetAttribute(&device_sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<std::pair<int, Kernel>> kernels;  // (stages * 1000 + threads, kernel)
  kernels.push_back({2128, instance<2, 128>()});
  kernels.push_back({2256, instance<2, 256>()});
  kernels.push_back({3128, instance<3, 128>()});
  kernels.push_back({3256, instance<3, 256>()});
  kernels.push_back({4128, instance<4, 128>()});
  kernels.push_back({4256, instance<4, 256>()});
  kernels.push_back({6128, instance<6, 128>()});
  kernels.push_back({6256, instance<6, 256>()});
  const ProbeSetup setup = probe_setup(MAX_X_ROWS * K * 2);  // a lambda captures no structured binding (C++17)
  char* const x = setup.x;
  float* const out = setup.out;
  const cudaStream_t stream = setup.stream;
  if (argc > 1 && std::string(argv[1]) == "xrows") {
    const int n = 8192, row_bytes = 256, splits = 2, k_tile = 128, iters = K / splits / k_tile;
    const size_t bytes = (size_t)K * n * 2, pitch = (size_t)n * 2;
    std::vector<char*> copies = device_copies(COPIES, bytes);
    Kernel kernel = instance<4, 256>();
    dim3 grid(n / (row_bytes / 2), splits);
    printf("| X rows | MB into the SMs | us | GB/s a block |\n|---|---|---|---|\n");
    for (int x_rows : {0, 8, 16, 32, 64}) {
      int smem = 4 * (k_tile * row_bytes + x_rows * k_tile * 2);
      float us = median_replay_us(stream, COPIES, [&](int copy) {
        kernel<<<grid, 256, smem, stream>>>(copies[copy], pitch, row_bytes, k_tile, iters, x, x_rows, out);
      });
      double taken = (double)bytes + (double)grid.x * grid.y * x_rows * (K / splits) * 2;
      printf("| %d | %.1f | %.2f | %.1f |\n", x_rows, taken / 1e6, us, taken / (grid.x * grid.y) / (us * 1e-6) / 1e9);
    }
    return 0;
  }
  std::vector<Row> rows;
  for (int n : {4096, 6144}) {
    size_t bytes = (size_t)K * n * 2, pitch = (size_t)n * 2;
    std::vector<char*> copies = device_copies(COPIES, bytes);
    for (int cols : {64, 128, 256})
      for (int splits : {1, 2, 4, 8})
        for (int stage_kb : {8, 16, 32, 64})
          for (auto [code, kernel] : kernels)
            for (int x_tile : {0, 1}) {  // no X tile, or X_ROWS rows
              int stages = code / 1000, threads = code % 1000, row_bytes = cols * 2;
              int k_tile = stage_kb * 1024 / row_bytes, iters = K / splits / k_tile;
              int stage = k_tile * row_bytes + (x_tile ? X_ROWS * k_tile * 2 : 0), smem = stages * stage;
              int blocks = n / cols * splits;
              if (iters < stages || smem > 227 * 1024 || blocks < 64 || blocks > 1024) continue;
              int resident;
              CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, smem));
              dim3 grid(n / cols, splits);
              Kernel run = kernel;  // a structured binding cannot be captured (C++17)
              float us = median_replay_us(stream, COPIES, [&](int copy) {
                run<<<grid, threads, smem, stream>>>(copies[copy], pitch, row_bytes, k_tile, iters, x, x_tile * X_ROWS, out);
              });
              rows.push_back({n, cols, splits, stage_kb, stages, threads, x_tile, resident, us});
            }
    for (auto& c : copies) CHECK(cudaFree(c));
  }
  // every row, then the fastest per (N, X tile) and per (N, strip, split)
  printf("| N | cols | splits | blocks | stage KiB | stages | threads | X tile | blocks/SM | us | TB/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows)
    printf("| %d | %d | %d | %d | %d | %d | %d | %s | %d | %.2f | %.2f |\n", r.n, r.cols, r.splits, r.n / r.cols * r.splits,
           r.stage_kb, r.stages, r.threads, r.x_tile ? "yes" : "no", r.resident, r.us, (double)K * r.n * 2 / (r.us * 1e-6) / 1e12);
  printf("\nfastest per N and strip (no X tile / with X tile):\n");
  for (int n : {4096, 6144})
    for (int cols : {64, 128, 256})
      for (int x_tile : {0, 1}) {
        const Row* best = nullptr;
        for (const Row& r : rows)
          if (r.n == n && r.cols == cols && r.x_tile == x_tile && (!best || r.us < best->us)) best = &r;
        if (best)
          printf("N %d cols %d X %d: %.2f us (splits %d, stage %d KiB x %d, %d threads, %d/SM)\n", n, cols, x_tile,
                 best->us, best->splits, best->stage_kb, best->stages, best->threads, best->resident);
      }
  printf("(%d SMs)\n", device_sms);
  return 0;
}
