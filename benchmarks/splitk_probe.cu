// What do a split-K weight stream's parts beside the stream cost, back to back? overlap_probe.cu
// found that a pure cp.async stream of W [4096, N] (a 16-row X tile beside each stage) runs 8.6-12
// us back to back at the generated plans' geometries, where the plans run 12.5-15 us. This probe
// adds the plans' parts one at a time to that stream (every call a programmatic dependent of the
// one before, launched spread as program.lower_graph launches it):
//   xinv    after the wait, a loop-invariant [16, K tile] tile of X copied synchronously (LayerNorm's
//           ones are made from it);
//   combine after the loop, the warps' partial sums added through shared memory, the block's
//           [rows, 64] f32 partial written, a fence and the strip's counter, and the last block of
//           a strip adding every split's partial into the f16 output (fuse_split_k's tail); its
//           steps alone: warpsum (the shared-memory sums), store (+ the partial written), vote (+ the
//           fence and the counter, no combine); combine0: the fence by thread 0 alone after the
//           block's barrier (CUTLASS's semaphore) instead of every thread's;
//   late    launch_dependents after the loop instead of at entry (the next call's grid launches as
//           this one's streams end), with shared memory for one block more an SM than the grid's
//           share (+1) or without;
//   cluster the same sums through distributed shared memory instead: a strip's splits launched as
//           one thread block cluster, each block's partial left in its shared memory, block 0
//           adding them (no global round trip, no counter);
//   ll      the same sums with the flags in the data (NCCL's LL protocol): splits 1.. store each
//           value of their partial beside a flag in one 8-byte store, split 0 keeps its own in shared
//           memory and polls for the others' pairs, adds them and resets the flags for the next call
//           (no fence, no counter, no re-read of its own partial; split 0 waits on blocks of its own
//           grid, which a grid of one wave holds resident);
//   ll_last the counter elects the last block (as combine) before any partial is stored: the others
//           store their (value, flag) pairs and leave, the last keeps its own and loads all of theirs
//           at once, loading again any not flagged yet (no fence; no block waits on another that may
//           still stream).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o splitk_probe splitk_probe.cu && ./splitk_probe
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include <cooperative_groups.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"
#include "probe_ring.cuh"

namespace cg = cooperative_groups;

constexpr int COPIES = 4;
constexpr int CALLS = 16;
constexpr int K = 4096;
constexpr int COLS = 64;  // a strip's columns (row_bytes 128)
constexpr int SMS = 132, SHARED_PER_SM = 228 * 1024, SHARED_RESERVED = 1024;
enum { XINV = 1, COMBINE = 2, CLUSTER = 4, WARPSUM = 8, STORE = 16, VOTE = 32, FENCE0 = 64, LATE = 128, PLUS1 = 256,
       LL = 512, LL_LAST = 1024 };

struct Args {
  const char* w;
  size_t pitch;
  int k_tile, iters, rows, n, splits, flags;
  const char* x;
  float* partials;
  int* counters;
  __half* out;
  uint2* pairs;  // ll: (value, flag) per element of splits 1..'s partials
};

template <int Stages, int Threads>
__global__ void __launch_bounds__(Threads) splitk_kernel(Args a) {
  if (!(a.flags & LATE)) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  extern __shared__ __align__(128) char ring[];
  __shared__ int last;
  const int row_bytes = COLS * 2, w_bytes = a.k_tile * row_bytes, x_bytes = a.rows * a.k_tile * 2;
  const int stage = w_bytes + x_bytes, strip = blockIdx.x, split = blockIdx.y;
  const size_t first_row = (size_t)split * a.k_tile * a.iters;
  const char* p = a.w + (size_t)strip * row_bytes + first_row * a.pitch;
  char* after_ring = ring + Stages * stage;  // the loop-invariant X tile
  auto issue_w = [&](int i) {
    char* slot = ring + (i % Stages) * stage;
    for (int c = threadIdx.x; c < w_bytes / 16; c += Threads)
      cp_async16(slot + c * 16, p + ((size_t)i * a.k_tile + c / 8) * a.pitch + (c % 8) * 16);
  };
  auto issue_x = [&](int i) {
    char* slot = ring + (i % Stages) * stage + w_bytes;
    const int per_row = a.k_tile * 2 / 16;
    for (int c = threadIdx.x; c < x_bytes / 16; c += Threads)
      cp_async16(slot + c * 16, a.x + (size_t)(c / per_row) * K * 2 + (first_row + (size_t)i * a.k_tile) * 2 +
                                    (c % per_row) * 16);
  };
  auto xinv = [&] {  // [16, K tile] of X at the strip's slice, through registers
    if (!(a.flags & XINV)) return 0.f;
    const int per_row = a.k_tile * 2 / 16;
    for (int c = threadIdx.x; c < 16 * per_row; c += Threads)
      ((uint4*)after_ring)[c] = *(const uint4*)(a.x + (size_t)(c / per_row) * K * 2 + (size_t)strip * a.k_tile * 2 +
                                                (c % per_row) * 16);
    __syncthreads();
    return ((const float*)after_ring)[threadIdx.x % 64];
  };
  float acc = dependent_ring_stream<Stages, Threads>(ring, stage, a.iters, issue_w, xinv, issue_x);
  if (a.flags & LATE) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  if (!(a.flags & (COMBINE | CLUSTER | WARPSUM | STORE | VOTE | LL | LL_LAST))) {
    if (acc == 1.2345f) a.out[strip] = __float2half(acc);  // keeps the loads alive
    return;
  }
  // the warps' partial sums of the block's [rows, 64] tile, added through shared memory
  const int warps = Threads / 32, warp = threadIdx.x / 32, tile = a.rows * COLS;
  float* warp_sums = (float*)ring;  // the ring is free once the loop has ended
  for (int e = threadIdx.x % 32; e < tile; e += 32) warp_sums[warp * tile + e] = acc + e;
  __syncthreads();
  float* block_sum = warp_sums + warps * tile;
  for (int e = threadIdx.x; e < tile; e += Threads) {
    float s = 0.f;
    for (int w = 0; w < warps; ++w) s += warp_sums[w * tile + e];
    block_sum[e] = s;
  }
  if (a.flags & CLUSTER) {
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    if (cluster.block_rank() == 0)
      for (int e = threadIdx.x; e < tile; e += Threads) {
        float s = 0.f;
        for (int r = 0; r < a.splits; ++r) s += cluster.map_shared_rank(block_sum, r)[e];
        a.out[(size_t)(e / COLS) * a.n + strip * COLS + e % COLS] = __float2half(s);
      }
    cluster.sync();  // the other blocks' shared memory stays until block 0 has read it
    return;
  }
  __syncthreads();
  if (a.flags & LL) {
    uint2* pairs = a.pairs + (size_t)strip * a.splits * tile;  // this strip's, (split - 1) * tile + e
    if (split != 0) {
      for (int e = threadIdx.x; e < tile; e += Threads) {
        uint2* slot = pairs + (size_t)(split - 1) * tile + e;
        asm volatile("st.relaxed.gpu.global.v2.b32 [%0], {%1, %2};\n" :: "l"(slot), "r"(__float_as_uint(block_sum[e])),
                     "r"(1u) : "memory");
      }
      return;
    }
    for (int e = threadIdx.x; e < tile; e += Threads) {
      float s = block_sum[e];
      for (int r = 1; r < a.splits; ++r) {
        uint2* slot = pairs + (size_t)(r - 1) * tile + e;
        unsigned value, flag;
        do {
          asm volatile("ld.relaxed.gpu.global.v2.b32 {%0, %1}, [%2];\n" : "=r"(value), "=r"(flag) : "l"(slot) : "memory");
        } while (flag != 1u);
        s += __uint_as_float(value);
        asm volatile("st.relaxed.gpu.global.b32 [%0], %1;\n" :: "l"(&slot->y), "r"(0u) : "memory");
      }
      a.out[(size_t)(e / COLS) * a.n + strip * COLS + e % COLS] = __float2half(s);
    }
    return;
  }
  if (a.flags & LL_LAST) {
    uint2* pairs = a.pairs + (size_t)strip * a.splits * tile;  // this strip's, split * tile + e
    if (threadIdx.x == 0) {
      last = atomicAdd(&a.counters[strip], 1) == a.splits - 1;
      if (last) a.counters[strip] = 0;
    }
    __syncthreads();
    if (!last) {
      for (int e = threadIdx.x; e < tile; e += Threads)
        asm volatile("st.relaxed.gpu.global.v2.b32 [%0], {%1, %2};\n" :: "l"(pairs + (size_t)split * tile + e),
                     "r"(__float_as_uint(block_sum[e])), "r"(1u) : "memory");
      return;
    }
    // every pair this thread adds loaded at once (one round trip), then any not yet flagged again
    // at most tile / Threads elements a thread (tiles of up to 16 x 64), and splits (8 at 128 threads,
    // 4 at 256: the pairs in registers without spills)
    constexpr int E = 16 * COLS / Threads, R = Threads == 128 ? 8 : 4;
    unsigned value[E][R], flag[E][R];
#pragma unroll
    for (int i = 0; i < E; ++i)
#pragma unroll
      for (int r = 0; r < R; ++r)
        if (threadIdx.x + i * Threads < tile && r < a.splits && r != split)
          asm volatile("ld.relaxed.gpu.global.v2.b32 {%0, %1}, [%2];\n" : "=r"(value[i][r]), "=r"(flag[i][r])
                       : "l"(pairs + (size_t)r * tile + threadIdx.x + i * Threads));
    for (bool pending = true; pending;) {  // a pass over the pairs not flagged yet: one round trip
      pending = false;
#pragma unroll
      for (int i = 0; i < E; ++i)
#pragma unroll
        for (int r = 0; r < R; ++r)
          if (threadIdx.x + i * Threads < tile && r < a.splits && r != split && flag[i][r] != 1u) {
            asm volatile("ld.relaxed.gpu.global.v2.b32 {%0, %1}, [%2];\n" : "=r"(value[i][r]), "=r"(flag[i][r])
                         : "l"(pairs + (size_t)r * tile + threadIdx.x + i * Threads));
            pending = true;
          }
    }
#pragma unroll
    for (int i = 0; i < E; ++i) {
      const int e = threadIdx.x + i * Threads;
      if (e >= tile) continue;
      float s = block_sum[e];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (r >= a.splits || r == split) continue;
        uint2* slot = pairs + (size_t)r * tile + e;
        s += __uint_as_float(value[i][r]);
        asm volatile("st.relaxed.gpu.global.b32 [%0], %1;\n" :: "l"(&slot->y), "r"(0u) : "memory");
      }
      a.out[(size_t)(e / COLS) * a.n + strip * COLS + e % COLS] = __float2half(s);
    }
    return;
  }
  if (a.flags == WARPSUM) {
    if (block_sum[threadIdx.x % tile] == 1.2345f) a.out[strip] = __float2half(acc);
    return;
  }
  for (int e = threadIdx.x; e < tile; e += Threads)
    a.partials[((size_t)split * a.rows + e / COLS) * a.n + strip * COLS + e % COLS] = block_sum[e];
  if (a.flags == STORE) return;
  if (a.flags & FENCE0) {
    __syncthreads();
    if (threadIdx.x == 0) asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
  } else {
    __threadfence();
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    last = atomicAdd(&a.counters[strip], 1) == a.splits - 1;
    if (last) a.counters[strip] = 0;
  }
  __syncthreads();
  if (!last || !(a.flags & COMBINE)) return;
  __threadfence();
  for (int e = threadIdx.x; e < tile; e += Threads) {
    float s = 0.f;
    for (int r = 0; r < a.splits; ++r) s += a.partials[((size_t)r * a.rows + e / COLS) * a.n + strip * COLS + e % COLS];
    a.out[(size_t)(e / COLS) * a.n + strip * COLS + e % COLS] = __float2half(s);
  }
}

using Kernel = void (*)(Args);

template <int S, int T>
Kernel instance() {
  CHECK(cudaFuncSetAttribute(splitk_kernel<S, T>, cudaFuncAttributeMaxDynamicSharedMemorySize, 226 * 1024));
  CHECK(cudaFuncSetAttribute(splitk_kernel<S, T>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  return splitk_kernel<S, T>;
}

// With `extra`, one block more an SM than the grid's share.
int spread_bytes(int smem, int resident, int blocks, int extra) {
  int per_sm = (blocks + SMS - 1) / SMS + extra;
  if (resident <= per_sm) return smem;
  int spread = SHARED_PER_SM / (per_sm + 1) - SHARED_RESERVED + 1;
  return std::max(smem, (spread + 15) / 16 * 16);
}

struct Config {
  const char* what;
  int n, rows, splits, stage_kb, code;  // code: stages * 1000 + threads
};

int main(int argc, char** argv) {
  std::vector<std::pair<int, Kernel>> kernels = {{3128, instance<3, 128>()}, {3256, instance<3, 256>()},
                                                 {4128, instance<4, 128>()}, {4256, instance<4, 256>()}};
  std::vector<Config> configs = {
      {"LayerNorm+Linear c64_s4_t256", 4096, 16, 4, 8, 4256}, {"LayerNorm+Linear c64_s8_t128", 4096, 16, 8, 8, 4128},
      {"probe's best, K tile 128", 4096, 16, 4, 16, 4256},    {"K tile 128, 3 stages", 4096, 16, 4, 16, 3256},
      {"rmsnorm_linear bs8 c64_s4", 6144, 8, 4, 16, 3128},    {"rmsnorm_linear bs1 c64_s4", 6144, 1, 4, 16, 4128},
      {"gated-like 2 splits", 6144, 8, 2, 16, 3256},          {"LayerNorm+Linear c64_s2_k128_t256", 4096, 16, 2, 16, 4256}};
  const int flag_sets[] = {0,       XINV,        WARPSUM,       STORE,   VOTE, COMBINE, COMBINE | FENCE0,
                           XINV | COMBINE, CLUSTER, PLUS1, LATE | PLUS1, COMBINE | PLUS1, COMBINE | LATE,
                           COMBINE | LATE | PLUS1, LL, LL_LAST};
  const char* flag_names[] = {"stream", "xinv", "warpsum", "store", "vote", "combine", "combine0", "xinv+combine",
                              "cluster", "stream +1", "stream late +1", "combine +1", "combine late",
                              "combine late +1", "ll", "ll_last"};
  // the modes to run: all, or those named on the command line
  auto wanted = [&](int f) {
    if (argc < 2) return true;
    for (int k = 1; k < argc; ++k)
      if (std::string(argv[k]) == flag_names[f]) return true;
    return false;
  };
  char* x;
  CHECK(cudaMalloc(&x, 16 * K * 2));
  CHECK(cudaMemset(x, 0, 16 * K * 2));
  float* partials;
  CHECK(cudaMalloc(&partials, 8 * 16 * 6144 * 4));
  int* counters;
  CHECK(cudaMalloc(&counters, 6144 / COLS * 4));
  CHECK(cudaMemset(counters, 0, 6144 / COLS * 4));
  __half* out;
  CHECK(cudaMalloc(&out, 16 * 6144 * 2));
  uint2* pairs;  // every strip's splits 1..: at most 96 strips x 8 splits x 16 rows x 64 columns
  CHECK(cudaMalloc(&pairs, (size_t)96 * 8 * 16 * COLS * sizeof(uint2)));
  CHECK(cudaMemset(pairs, 0, (size_t)96 * 8 * 16 * COLS * sizeof(uint2)));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  std::vector<char*> copies[2] = {device_copies(COPIES, (size_t)K * 4096 * 2), device_copies(COPIES, (size_t)K * 6144 * 2)};
  printf("| plan | N | rows | splits | blocks | stage KiB | stages | threads | parts | blocks/SM | us | TB/s |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Config& c : configs) {
    Kernel kernel = nullptr;
    for (auto& [code, k] : kernels)
      if (code == c.code) kernel = k;
    int stages = c.code / 1000, threads = c.code % 1000;
    int k_tile = c.stage_kb * 1024 / (COLS * 2), iters = K / c.splits / k_tile, blocks = c.n / COLS * c.splits;
    int stage = k_tile * COLS * 2 + c.rows * k_tile * 2;
    int sums = (threads / 32 + 1) * c.rows * COLS * 4;  // the warps' partials, in the ring after the loop
    for (int f = 0; f < (int)(sizeof(flag_sets) / sizeof(int)); ++f) {
      if (!wanted(f)) continue;
      int flags = flag_sets[f], natural, resident;
      int smem = std::max(stages * stage + ((flags & XINV) ? 16 * k_tile * 2 : 0), sums);
      CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&natural, kernel, threads, smem));
      int launch_smem = spread_bytes(smem, natural, blocks, (flags & PLUS1) ? 1 : 0);
      CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, launch_smem));
      cudaLaunchAttribute attributes[2];
      attributes[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attributes[0].val.programmaticStreamSerializationAllowed = 1;
      attributes[1].id = cudaLaunchAttributeClusterDimension;
      attributes[1].val.clusterDim = {1, (unsigned)c.splits, 1};
      cudaLaunchConfig_t config = {dim3(c.n / COLS, c.splits), dim3(threads), (size_t)launch_smem, stream, attributes,
                                   (flags & CLUSTER) ? 2u : 1u};
      std::vector<char*>& w = copies[c.n == 6144];
      float us = median_replay_us(stream, 1, [&](int) {
        for (int call = 0; call < CALLS; ++call) {
          Args a = {w[call % COPIES], (size_t)c.n * 2, k_tile, iters, c.rows, c.n, c.splits, flags, x, partials, counters, out,
                    pairs};
          CHECK(cudaLaunchKernelEx(&config, kernel, a));
        }
      }) / CALLS;
      printf("| %s | %d | %d | %d | %d | %d | %d | %d | %s | %d | %.2f | %.2f |\n", c.what, c.n, c.rows, c.splits, blocks,
             c.stage_kb, stages, threads, flag_names[f], resident, us, (double)K * c.n * 2 / (us * 1e-6) / 1e12);
    }
  }
  return 0;
}
