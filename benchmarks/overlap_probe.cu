// How much of a weight stream's one-launch overhead can the call before hide? ring_probe.cu times one
// launch; gpu.py times calls back to back, each call's kernel launched as a programmatic dependent
// of the one before (blockgen.GridDependency): it triggers its dependents at entry, copies the first
// ring stages of W (a weight: nothing before it writes it) and only then waits for the grid before.
// This probe streams column strips of W [4096, N] f16 that way, 16 launches per call of the graph, W's
// copies rotated past L2, in three modes:
//   serial  no programmatic launch (each kernel starts when the one before has ended);
//   pdl     programmatic launch with the kernel's own shared memory;
//   spread  programmatic launch with the shared memory plan.spread_shared_bytes gives (an SM holds
//           only its share of the grid's blocks, so the next call's blocks cannot join it early),
// optionally with a 16-row X tile per stage copied after the wait (L2 hits, as the matmul's X).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o overlap_probe overlap_probe.cu && ./overlap_probe
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"
#include "probe_ring.cuh"

constexpr int COPIES = 4;
constexpr int CALLS = 16;  // launches per graph: the steady state of back-to-back calls
constexpr int K = 4096;
constexpr int X_ROWS = 16;
constexpr int SMS = 132, SHARED_PER_SM = 228 * 1024, SHARED_RESERVED = 1024;

// Block (x, y) streams columns [x row_bytes, (x+1) row_bytes) of K slice y in `iters` stages of
// k_tile rows, Stages - 1 ahead. The first Stages - 1 stages of W are issued before the grid
// dependency's wait; X's tile of a stage (with `x_tile`) only after it.
template <int Stages, int Threads>
__global__ void __launch_bounds__(Threads) stream_kernel(const char* __restrict__ w, size_t pitch, int row_bytes,
                                                        int k_tile, int iters, const char* __restrict__ x, int x_tile,
                                                        float* out) {
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  extern __shared__ __align__(128) char ring[];
  const int w_bytes = k_tile * row_bytes, x_bytes = x_tile ? X_ROWS * k_tile * 2 : 0, stage = w_bytes + x_bytes;
  const int chunks_per_row = row_bytes / 16, x_chunks_per_row = k_tile * 2 / 16;
  const size_t first_row = (size_t)blockIdx.y * k_tile * iters;
  const char* p = w + (size_t)blockIdx.x * row_bytes + first_row * pitch;
  auto issue_w = [&](int i) {
    char* slot = ring + (i % Stages) * stage;
    for (int c = threadIdx.x; c < w_bytes / 16; c += Threads) {
      int r = c / chunks_per_row, q = c % chunks_per_row;
      cp_async16(slot + c * 16, p + ((size_t)i * k_tile + r) * pitch + q * 16);
    }
  };
  auto issue_x = [&](int i) {
    char* slot = ring + (i % Stages) * stage + w_bytes;
    for (int c = threadIdx.x; c < x_bytes / 16; c += Threads) {
      int r = c / x_chunks_per_row, q = c % x_chunks_per_row;
      cp_async16(slot + c * 16, x + (size_t)r * K * 2 + (first_row + (size_t)i * k_tile) * 2 + q * 16);
    }
  };
  float acc = dependent_ring_stream<Stages, Threads>(ring, stage, iters, issue_w, [] { return 0.f; }, issue_x);
  if (acc == 1.2345f) out[blockIdx.x] = acc;  // keeps the loads alive
}

using Kernel = void (*)(const char*, size_t, int, int, int, const char*, int, float*);

template <int S, int T>
Kernel instance() {
  CHECK(cudaFuncSetAttribute(stream_kernel<S, T>, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  return stream_kernel<S, T>;
}

// plan.spread_shared_bytes: the shared memory with which an SM holds at most ceil(blocks / SMS).
int spread_bytes(int smem, int resident, int blocks) {
  int per_sm = (blocks + SMS - 1) / SMS;
  if (resident <= per_sm) return smem;
  int spread = SHARED_PER_SM / (per_sm + 1) - SHARED_RESERVED + 1;
  return std::max(smem, (spread + 15) / 16 * 16);
}

const char* MODES[] = {"serial", "pdl", "spread"};

struct Row {
  int n, cols, splits, stage_kb, stages, threads, x_tile, mode, resident;
  float us;
};

int main() {
  std::vector<std::pair<int, Kernel>> kernels;  // (stages * 1000 + threads, kernel)
  kernels.push_back({3128, instance<3, 128>()});
  kernels.push_back({3256, instance<3, 256>()});
  kernels.push_back({4128, instance<4, 128>()});
  kernels.push_back({4256, instance<4, 256>()});
  kernels.push_back({8128, instance<8, 128>()});
  kernels.push_back({8256, instance<8, 256>()});
  char* x;
  CHECK(cudaMalloc(&x, X_ROWS * K * 2));
  CHECK(cudaMemset(x, 0, X_ROWS * K * 2));
  float* out;
  CHECK(cudaMalloc(&out, 4096 * 4));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  std::vector<Row> rows;
  for (int n : {4096, 6144}) {
    size_t bytes = (size_t)K * n * 2, pitch = (size_t)n * 2;
    std::vector<char*> copies = device_copies(COPIES, bytes);
    for (int cols : {64, 128})
      for (int splits : {2, 4, 8})
        for (int stage_kb : {8, 16})
          for (auto [code, kernel] : kernels)
            for (int x_tile : {0, 1})
              for (int mode = 0; mode < 3; ++mode) {
                int stages = code / 1000, threads = code % 1000, row_bytes = cols * 2;
                int k_tile = stage_kb * 1024 / row_bytes, iters = K / splits / k_tile;
                int stage = k_tile * row_bytes + (x_tile ? X_ROWS * k_tile * 2 : 0), smem = stages * stage;
                int blocks = n / cols * splits;
                if (iters < stages || smem > 227 * 1024) continue;
                int natural;
                CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&natural, kernel, threads, smem));
                int launch_smem = mode == 2 ? spread_bytes(smem, natural, blocks) : smem, resident;
                CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, launch_smem));
                dim3 grid(n / cols, splits);
                cudaLaunchAttribute attribute;
                attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
                attribute.val.programmaticStreamSerializationAllowed = 1;
                cudaLaunchConfig_t config = {grid, dim3(threads), (size_t)launch_smem, stream, &attribute,
                                             mode ? 1u : 0u};
                Kernel run = kernel;  // a structured binding cannot be captured (C++17)
                float us = median_replay_us(stream, 1, [&](int) {
                  for (int call = 0; call < CALLS; ++call)
                    CHECK(cudaLaunchKernelEx(&config, run, (const char*)copies[call % COPIES], pitch, row_bytes,
                                             k_tile, iters, (const char*)x, x_tile, out));
                }) / CALLS;
                rows.push_back({n, cols, splits, stage_kb, stages, threads, x_tile, mode, resident, us});
              }
    for (auto& c : copies) CHECK(cudaFree(c));
  }
  printf("| N | cols | splits | blocks | stage KiB | stages | threads | X tile | mode | blocks/SM | us | TB/s |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows)
    printf("| %d | %d | %d | %d | %d | %d | %d | %s | %s | %d | %.2f | %.2f |\n", r.n, r.cols, r.splits,
           r.n / r.cols * r.splits, r.stage_kb, r.stages, r.threads, r.x_tile ? "yes" : "no", MODES[r.mode], r.resident,
           r.us, (double)K * r.n * 2 / (r.us * 1e-6) / 1e12);
  printf("\nfastest per N, X tile and mode:\n");
  for (int n : {4096, 6144})
    for (int x_tile : {0, 1})
      for (int mode = 0; mode < 3; ++mode) {
        const Row* best = nullptr;
        for (const Row& r : rows)
          if (r.n == n && r.x_tile == x_tile && r.mode == mode && (!best || r.us < best->us)) best = &r;
        printf("N %d X %d %-6s: %.2f us = %.2f TB/s (cols %d, splits %d, stage %d KiB x %d, %d threads, %d/SM)\n", n,
               x_tile, MODES[mode], best->us, (double)K * n * 2 / (best->us * 1e-6) / 1e12, best->cols, best->splits,
               best->stage_kb, best->stages, best->threads, best->resident);
      }
  return 0;
}
