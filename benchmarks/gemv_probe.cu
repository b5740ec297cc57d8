// How fast can a kernel stream one weight matrix of the benchmark programs' size, by geometry?
// stream_probe.cu measured steady state (1 GiB); a weight-streaming kernel moves 32-90 MB in
// 8-25 us, where the pipeline's fill and the last wave's tail count. This probe reads W [K, N] f16
// (row-major, as the search's weights are) with a cp.async ring, at the real sizes, as
//   contig  G blocks, each a contiguous 1/G of W (what torch.sum does);
//   strip   a grid (N / cols, splits): block (x, y) reads columns [x cols, (x+1) cols) of K slice y,
//           the slice either a contiguous range of rows or every splits-th k_tile of rows (interleaved);
// each timed as a CUDA graph of 8 launches over 8 copies of W (past the 50 MB L2), median of 20
// replays per launch, and as a graph of 1 launch (the time gpu.py's replays see).
//   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o gemv_probe gemv_probe.cu && ./gemv_probe (beside probe_ring.cuh)
#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstdint>
#include <vector>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"
#include "probe_ring.cuh"

constexpr int COPIES = 8;

// Block (x, y) streams `iters` tiles of k_tile rows x row_bytes; tile i starts at row
// first_row + i * row_step (a contiguous slice: row_step = k_tile; interleaved: k_tile * splits).
__global__ void strip_kernel(const char* __restrict__ w, size_t pitch, int row_bytes, int k_tile, int iters,
                             int interleave, float* out) {
  extern __shared__ __align__(128) char ring[];
  int splits = gridDim.y;
  size_t first_row = interleave ? (size_t)blockIdx.y * k_tile : (size_t)blockIdx.y * k_tile * iters;
  size_t row_step = interleave ? (size_t)k_tile * splits : k_tile;
  const char* p = w + (size_t)blockIdx.x * row_bytes + first_row * pitch;
  int chunks_per_row = row_bytes / 16, stage = k_tile * row_bytes;
  float acc = ring_stream(ring, stage, iters, [&](int i) {
    for (int c = threadIdx.x; c < stage / 16; c += THREADS) {
      int r = c / chunks_per_row, q = c % chunks_per_row;
      cp_async16(ring + (i % STAGES) * stage + c * 16, p + ((size_t)i * row_step + r) * pitch + q * 16);
    }
  });
  if (acc == 1.2345f) out[0] = acc;
}

struct Geometry {
  const char* name;
  int cols, splits, k_tile, interleave;  // cols == 0: contiguous slices of `splits` blocks
};

int main(int argc, char** argv) {
  // ./gemv_probe [N cols splits]: that one geometry only (for a profiler)
  const int K = 4096;
  std::vector<int> sizes = {6144, 4096, 11008};
  if (argc == 4) sizes = {atoi(argv[1])};
  for (int N : sizes) {
    size_t bytes = (size_t)K * N * 2, pitch = (size_t)N * 2;
    std::vector<char*> copies = device_copies(COPIES, bytes);
    float* out;
    CHECK(cudaMalloc(&out, 4));
    CHECK(cudaFuncSetAttribute(strip_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
    std::vector<Geometry> geometries;
    if (argc != 4)
      for (int g : {132, 264, 528}) geometries.push_back({"contig", 0, g, 0, 0});
    for (int cols : {64, 128, 256})
      for (int splits : {1, 2, 4, 8})
        for (int inter : {0, 1}) {
          if (splits == 1 && inter) continue;
          if (N % cols) continue;
          if (argc == 4 && (cols != atoi(argv[2]) || splits != atoi(argv[3]) || inter)) continue;
          geometries.push_back({"strip", cols, splits, 16384 / (cols * 2), inter});
        }
    cudaStream_t stream;
    CHECK(cudaStreamCreate(&stream));
    printf("\nW [%d, %d] f16, %.1f MB\n| geometry | cols | splits | interleaved | blocks | us/launch (8) | TB/s | us (1 launch) |\n"
           "|---|---|---|---|---|---|---|---|\n", K, N, bytes / 1e6);
    for (const Geometry& g : geometries) {
      dim3 grid;
      int row_bytes, k_tile, iters;
      size_t pitch_used;
      if (g.cols == 0) {  // contiguous: W seen as rows of 16 KiB, block y reads rows [y iters, (y+1) iters)
        row_bytes = 16384, k_tile = 1, pitch_used = row_bytes;
        iters = bytes / g.splits / row_bytes;
        grid = dim3(1, g.splits);
      } else {
        grid = dim3(N / g.cols, g.splits);
        row_bytes = g.cols * 2, k_tile = g.k_tile, pitch_used = pitch;
        iters = K / g.splits / k_tile;
      }
      int smem = STAGES * k_tile * row_bytes;
      auto launch = [&](int copy) {
        strip_kernel<<<grid, THREADS, smem, stream>>>(copies[copy], pitch_used, row_bytes, k_tile, iters, g.interleave, out);
      };
      float per_launch[2];
      for (int mode = 0; mode < 2; ++mode) {
        int n = mode == 0 ? COPIES : 1;
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
        for (int i = 0; i < n; ++i) launch(i);
        CHECK(cudaStreamEndCapture(stream, &graph));
        CHECK(cudaGraphInstantiate(&exec, graph, 0));
        std::vector<float> times;
        cudaEvent_t a, b;
        cudaEventCreate(&a);
        cudaEventCreate(&b);
        for (int rep = 0; rep < 23; ++rep) {
          CHECK(cudaEventRecord(a, stream));
          CHECK(cudaGraphLaunch(exec, stream));
          CHECK(cudaEventRecord(b, stream));
          CHECK(cudaEventSynchronize(b));
          float ms;
          cudaEventElapsedTime(&ms, a, b);
          if (rep >= 3) times.push_back(ms * 1e3f / n);
        }
        CHECK(cudaGetLastError());
        std::sort(times.begin(), times.end());
        per_launch[mode] = times[times.size() / 2];
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
      }
      size_t moved = (size_t)grid.x * grid.y * iters * k_tile * row_bytes;
      printf("| %s | %d | %d | %s | %d | %.2f | %.2f | %.2f |\n", g.name, g.cols, g.splits, g.interleave ? "yes" : "no",
             grid.x * grid.y, per_launch[0], moved / (per_launch[0] * 1e-6) / 1e12, per_launch[1]);
    }
    for (auto& c : copies) cudaFree(c);
  }
  return 0;
}
