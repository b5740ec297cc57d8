// Does wgmma take the weight streams' compute path off their critical path? gated_mlp bs8's kernel
// runs 21.0 of its 22.6 us with none of W's bytes read (knockout.py, run 185): its ldmatrix -> mma.sync
// chains are latency-bound at 8 warps an SM (ncu, run 186). Here the same streams with the tensor
// cores reading shared memory themselves: one warpgroup a block (128 threads) copies K tiles of X and
// of each weight's 64 columns into a cp.async ring and issues, per 16 of K and per weight, one
// wgmma.mma_async m64nNk16 in the swap form (the weights' 64 columns are wgmma's M, X's rows its N:
// out^T = W^T X^T, so 8-64 rows of X waste no tensor work). Layouts, 128-byte swizzle (16-byte chunk
// q of a 128-byte row r stored at chunk q ^ (r % 8), tiles 1024-byte aligned):
//   W tile [K_TILE][64] f16, MN-major A: SBO 1024 (8 K rows), a 16-K step 2048 bytes on;
//   X tile [NPAD][64] f16 a 64-K atom, K-major B: SBO 1024 (8 rows), a 16-K step 32 bytes on.
// Split K across blocks (grid.y); the last block of a column tile to arrive adds the others' f32
// partials and writes silu(X W1) * (X W2) (two weights) or X W (one).
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o wgmma_probe wgmma_probe.cu
//   ./wgmma_probe
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"

constexpr int K = 4096, COPIES = 8, CALLS = 2;  // a replay: CALLS launches, as gpu.py's weight streams

__device__ __forceinline__ unsigned smem_u32(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(unsigned dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(dst), "l"(src));
}

// A shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte offsets.
__device__ __forceinline__ uint64_t descriptor(unsigned addr, unsigned lbo, unsigned sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | (uint64_t)(lbo >> 4) << 16 | (uint64_t)(sbo >> 4) << 32 | 1ull << 62;
}

// D[64, N] += A B with A MN-major (imm-trans-a 1) and B K-major (imm-trans-b 0), f16 in, f32 accumulators.
template <int N> struct Wgmma;
template <> struct Wgmma<8> {
  static __device__ __forceinline__ void mma(float (&d)[4], uint64_t a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%0, %1, %2, %3}, %4, %5, p, 1, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "l"(a), "l"(b), "r"(1));
  }
};
template <> struct Wgmma<16> {
  static __device__ __forceinline__ void mma(float (&d)[8], uint64_t a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(a), "l"(b), "r"(1));
  }
};
template <> struct Wgmma<64> {
  static __device__ __forceinline__ void mma(float (&d)[32], uint64_t a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
                 "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(a), "l"(b), "r"(1));
  }
};

template <int ROWS> __host__ __device__ constexpr int npad() { return ROWS < 8 ? 8 : ROWS; }  // wgmma's N: X's rows, 8 at least

template <int ROWS, int WEIGHTS, int K_TILE, int COLS>
__host__ __device__ constexpr int stage_bytes() { return WEIGHTS * K_TILE * COLS * 2 + K_TILE / 64 * npad<ROWS>() * 128; }

enum Mode { FULL = 0, NO_MMA = 1, NO_W = 2 };  // knockouts: no wgmma issued; none of W's bytes copied

// Warpgroup g multiplies columns 64 g.. of the block's COLS, every thread copies. Launched as a programmatic dependent of the kernel
// before (as the generated kernels are): W's first stages are copied before griddepcontrol.wait, X
// (what that kernel writes) after it.
template <int ROWS, int WEIGHTS, int K_TILE, int STAGES, int THREADS, int COLS>
__global__ void __launch_bounds__(THREADS, 1) wgmma_kernel(const half* __restrict__ x, const half* __restrict__ w0,
                                                           const half* __restrict__ w1, int n, int splits, int mode,
                                                           float* partial, unsigned* counters, half* out) {
  // a weight's tile: COLS / 64 atoms [K_TILE][64], atom a holding columns 64 a..
  constexpr int NPAD = npad<ROWS>(), W_ATOM = K_TILE * 128, W_TILE = W_ATOM * (COLS / 64), X_ATOM = NPAD * 128;
  constexpr int AHEAD = STAGES - 2, STAGE = stage_bytes<ROWS, WEIGHTS, K_TILE, COLS>();
  static_assert(THREADS >= 2 * COLS, "a warpgroup for each 64 columns");
  static_assert(STAGE % 1024 == 0, "stages keep the swizzle's 1024-byte alignment");
  static_assert(STAGES >= 3, "a slot is refilled two iterations after it was read");
  extern __shared__ char dynamic[];
  __shared__ unsigned last;
  asm volatile("griddepcontrol.launch_dependents;\n");
  const unsigned base = (smem_u32(dynamic) + 1023) & ~1023u;
  const int tile = blockIdx.x, split = blockIdx.y, col0 = tile * COLS;
  const int k_len = K / splits, iters = k_len / K_TILE, k_first = split * k_len;
  const int wg = __shfl_sync(0xffffffff, threadIdx.x / 128, 0);  // warp-uniform to ptxas: else it serializes wgmma (C7518)
  const bool computes = wg < COLS / 64;

  auto issue_w = [&](int i) {
    if (mode == NO_W) return;
    const unsigned slot = base + (i % STAGES) * STAGE;
    const int k0 = k_first + i * K_TILE;
    for (int w = 0; w < WEIGHTS; ++w) {
      const half* src = (w ? w1 : w0) + (size_t)k0 * n + col0;
      for (int c = threadIdx.x; c < K_TILE * COLS / 8; c += THREADS) {
        const int r = c / (COLS / 8), q = c % (COLS / 8);  // row r, 16-byte chunk q of the tile's COLS
        cp_async16(slot + w * W_TILE + (q >> 3) * W_ATOM + r * 128 + (((q & 7) ^ (r & 7)) << 4),
                   src + (size_t)r * n + q * 8);
      }
    }
  };
  auto issue_x = [&](int i) {
    const unsigned xs = base + (i % STAGES) * STAGE + WEIGHTS * W_TILE;
    const int k0 = k_first + i * K_TILE;
    for (int c = threadIdx.x; c < ROWS * (K_TILE / 8); c += THREADS) {
      const int r = c / (K_TILE / 8), q = c % (K_TILE / 8);
      cp_async16(xs + (q >> 3) * X_ATOM + r * 128 + (((q & 7) ^ (r & 7)) << 4), x + (size_t)r * K + k0 + q * 8);
    }
  };

  float acc[WEIGHTS][NPAD / 2];
  for (int w = 0; w < WEIGHTS; ++w)
    for (int r = 0; r < NPAD / 2; ++r) acc[w][r] = 0.f;
  // the first AHEAD stages: W's a group each, then (after the wait) X's in one group
  for (int s = 0; s < AHEAD; ++s) {
    if (s < iters) issue_w(s);
    asm volatile("cp.async.commit_group;\n");
  }
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  for (int s = 0; s < AHEAD && s < iters; ++s) issue_x(s);
  asm volatile("cp.async.commit_group;\n");
  for (int it = 0; it < iters; ++it) {
    // iteration it's copies landed: at it 0 every first stage (X's group is the newest), later the
    // group committed AHEAD iterations ago
    if (it == 0) asm volatile("cp.async.wait_group 0;\n");
    else asm volatile("cp.async.wait_group %0;\n" :: "n"(AHEAD - 1));
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // the copies' writes, seen by wgmma's reads
    __syncthreads();  // and every thread's; warpgroup 0 waited for iteration it - 2's wgmma before it
    if (it + AHEAD < iters) {  // into the slot iteration it - 2 read
      issue_w(it + AHEAD);
      issue_x(it + AHEAD);
    }
    asm volatile("cp.async.commit_group;\n");
    if (computes && mode != NO_MMA) {
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
      const unsigned slot = base + (it % STAGES) * STAGE;
#pragma unroll
      for (int j = 0; j < K_TILE / 16; ++j) {
        const uint64_t b = descriptor(slot + WEIGHTS * W_TILE + (j >> 2) * X_ATOM + (j & 3) * 32, 16, 1024);
#pragma unroll
        for (int w = 0; w < WEIGHTS; ++w)
          Wgmma<NPAD>::mma(acc[w], descriptor(slot + w * W_TILE + wg * W_ATOM + j * 2048, W_ATOM, 1024), b);
      }
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
    }
  }
  if (computes) asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");

  // acc[w][4 j + 2 h + c]: column col0 + 16 warp + g + 8 h of weight w (warp: the block's, 64 wg + 16 (warp % 4)),
  // row 8 j + 2 t + c of X
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  auto at = [&](int s, int w, int col, int row) { return partial + (((size_t)s * WEIGHTS + w) * n + col) * NPAD + row; };
  if (splits > 1) {
    if (computes)
      for (int w = 0; w < WEIGHTS; ++w)
        for (int r = 0; r < NPAD / 2; r += 2) {
          const int j = r / 4, h = (r / 2) % 2;
          *(float2*)at(split, w, col0 + 16 * warp + g + 8 * h, 8 * j + 2 * t) = make_float2(acc[w][r], acc[w][r + 1]);
        }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&counters[tile], 1) == (unsigned)splits - 1;
    __syncthreads();
    if (!last || !computes) return;
    __threadfence();
    for (int s = 0; s < splits; ++s) {
      if (s == split) continue;
      for (int w = 0; w < WEIGHTS; ++w)
        for (int r = 0; r < NPAD / 2; r += 2) {
          const int j = r / 4, h = (r / 2) % 2;
          const float2 v = __ldcg((const float2*)at(s, w, col0 + 16 * warp + g + 8 * h, 8 * j + 2 * t));
          acc[w][r] += v.x;
          acc[w][r + 1] += v.y;
        }
    }
    if (threadIdx.x == 0) counters[tile] = 0;
  }
  if (!computes) return;
  for (int r = 0; r < NPAD / 2; ++r) {
    const int j = r / 4, h = (r / 2) % 2, c = r % 2, row = 8 * j + 2 * t + c, col = col0 + 16 * warp + g + 8 * h;
    if (row >= ROWS) continue;
    const float a = acc[0][r];
    const float v = WEIGHTS == 2 ? a / (1.f + __expf(-a)) * acc[WEIGHTS - 1][r] : a;
    out[(size_t)row * n + col] = __float2half(v);
  }
}

__global__ void reference_kernel(const half* x, const half* w0, const half* w1, int weights, int n, float* ref) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y;
  float a = 0.f, b = 0.f;
  for (int k = 0; k < K; ++k) {
    const float xv = __half2float(x[(size_t)row * K + k]);
    a += xv * __half2float(w0[(size_t)k * n + col]);
    if (weights == 2) b += xv * __half2float(w1[(size_t)k * n + col]);
  }
  ref[(size_t)row * n + col] = weights == 2 ? a / (1.f + expf(-a)) * b : a;
}

__global__ void fill_kernel(half* p, size_t count, unsigned seed, float scale) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    p[i] = __float2half(((int)(h % 2001) - 1000) * 1e-3f * scale);
  }
}

// The read bandwidth of this run: 16-byte loads over `count` int4, four in flight a thread.
__global__ void read_kernel(const int4* __restrict__ p, size_t count, int* sink) {
  int acc = 0;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += 4 * stride) {
    int4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = i + u * stride < count ? __ldcs(p + i + u * stride) : make_int4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < 4; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678) sink[0] = acc;
}

using Kernel = void (*)(const half*, const half*, const half*, int, int, int, float*, unsigned*, half*);

struct Case {
  const char* program;
  int rows, weights, n, k_tile, stages, threads, cols, splits, mode;
  Kernel kernel;
  int smem;
};

template <int ROWS, int WEIGHTS, int K_TILE, int STAGES, int THREADS, int COLS = 64>
Case make_case(const char* program, int n, int splits, int mode = FULL) {
  const int smem = STAGES * stage_bytes<ROWS, WEIGHTS, K_TILE, COLS>() + 1024;  // + the 1024-byte alignment
  Kernel kernel = wgmma_kernel<ROWS, WEIGHTS, K_TILE, STAGES, THREADS, COLS>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  return {program, ROWS, WEIGHTS, n, K_TILE, STAGES, THREADS, COLS, splits, mode, kernel, smem};
}

int main() {
  const char* modes[] = {"", " no wgmma", " no W"};
  const std::vector<Case> cases = {
      make_case<64, 2, 64, 8, 256>("gated_mlp bs8", 4096, 2), make_case<64, 2, 64, 8, 256>("gated_mlp bs8", 4096, 2, NO_MMA),
      make_case<64, 2, 64, 8, 256>("gated_mlp bs8", 4096, 2, NO_W), make_case<64, 2, 128, 4, 256>("gated_mlp bs8", 4096, 2),
      make_case<64, 2, 64, 8, 128>("gated_mlp bs8", 4096, 2), make_case<64, 2, 64, 4, 256>("gated_mlp bs8", 4096, 4),
      make_case<64, 2, 64, 5, 256, 128>("gated_mlp bs8", 4096, 4),
      make_case<8, 2, 64, 8, 256>("gated_mlp bs1", 4096, 2),
      make_case<16, 1, 64, 8, 256>("layernorm_linear", 4096, 2), make_case<16, 1, 64, 8, 256>("layernorm_linear", 4096, 2, NO_MMA),
      make_case<16, 1, 64, 8, 256>("layernorm_linear", 4096, 2, NO_W), make_case<16, 1, 64, 8, 256>("layernorm_linear", 4096, 4),
      make_case<16, 1, 128, 6, 256>("layernorm_linear", 4096, 2), make_case<16, 1, 64, 8, 128>("layernorm_linear", 4096, 4),
      make_case<16, 1, 64, 8, 256, 128>("layernorm_linear", 4096, 4), make_case<16, 1, 64, 8, 256, 128>("layernorm_linear", 4096, 8),
      make_case<16, 1, 64, 8, 256>("rmsnorm_linear bs8", 6144, 2), make_case<2, 1, 64, 8, 256>("rmsnorm_linear bs1", 6144, 2),
  };
  const size_t weight_elems = (size_t)K * 6144, max_rows = 64;
  half *weights, *x, *out;
  float *partial, *ref;
  unsigned* counters;
  int* sink;
  CHECK(cudaMalloc(&weights, COPIES * 2 * weight_elems * sizeof(half)));  // COPIES x (W1, W2), rotated past L2
  CHECK(cudaMalloc(&x, max_rows * K * sizeof(half)));
  CHECK(cudaMalloc(&out, max_rows * 6144 * sizeof(half)));
  CHECK(cudaMalloc(&ref, max_rows * 6144 * sizeof(float)));
  CHECK(cudaMalloc(&partial, 4 * 2 * 6144 * max_rows * sizeof(float)));
  CHECK(cudaMalloc(&counters, 4096 * sizeof(unsigned)));
  CHECK(cudaMemset(counters, 0, 4096 * sizeof(unsigned)));
  CHECK(cudaMalloc(&sink, 4));
  fill_kernel<<<1024, 256>>>(weights, COPIES * 2 * weight_elems, 17, 1.f / 16);
  fill_kernel<<<256, 256>>>(x, max_rows * K, 91, 1.f);
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  const size_t all_bytes = COPIES * 2 * weight_elems * sizeof(half);
  const float read_us = median_replay_us(stream, 1, [&](int) {
    read_kernel<<<132 * 4, 512, 0, stream>>>((const int4*)weights, all_bytes / 16, sink);
  });
  const double read_tbs = all_bytes / (read_us * 1e-6) / 1e12;
  printf("read bandwidth: %.0f MB in %.1f us, %.2f TB/s\n\n", all_bytes / 1e6, read_us, read_tbs);
  printf("| program | rows | weights | N | columns | K tile | stages | threads | splits | blocks | shared KB | max err | us, 1 call | us | floor us | of read bw |\n");
  printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Case& c : cases) {
    auto w_of = [&](int copy, int w) { return weights + ((size_t)copy * 2 + w) * (size_t)K * c.n; };
    const dim3 grid(c.n / c.cols, c.splits);
    cudaLaunchAttribute dependent;
    dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    dependent.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {grid, dim3(c.threads), (size_t)c.smem, stream, &dependent, 1};
    auto launch = [&](int copy) {
      CHECK(cudaLaunchKernelEx(&config, c.kernel, (const half*)x, (const half*)w_of(copy, 0), (const half*)w_of(copy, 1),
                               c.n, c.splits, c.mode, partial, counters, out));
    };
    // correctness first: poisoned output, float reference
    CHECK(cudaMemset(out, 0xff, max_rows * 6144 * sizeof(half)));
    launch(0);
    reference_kernel<<<dim3(c.n / 128, c.rows), 128, 0, stream>>>(x, w_of(0, 0), w_of(0, 1), c.weights, c.n, ref);
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaGetLastError());
    std::vector<half> got((size_t)c.rows * c.n);
    std::vector<float> want((size_t)c.rows * c.n);
    CHECK(cudaMemcpy(got.data(), out, got.size() * sizeof(half), cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(want.data(), ref, want.size() * sizeof(float), cudaMemcpyDeviceToHost));
    double scale = 0, err = 0;
    for (size_t i = 0; i < want.size(); ++i) scale = std::max(scale, (double)std::abs(want[i]));
    for (size_t i = 0; i < want.size(); ++i) {
      const double e = std::abs((double)__half2float(got[i]) - want[i]) / scale;
      err = std::isnan(e) ? 1e9 : std::max(err, e);
    }
    const float single = median_replay_us(stream, COPIES, [&](int copy) { launch(copy); });
    const float us = median_replay_us(stream, COPIES, [&](int copy) {
      for (int call = 0; call < CALLS; ++call) launch((copy + call) % COPIES);
    }) / CALLS;
    CHECK(cudaGetLastError());
    const double bytes = (double)c.weights * K * c.n * 2 + (double)c.rows * (K + c.n) * 2;
    const double floor_us = bytes / (read_tbs * 1e12) * 1e6;
    const bool checked = c.mode == FULL;  // a knockout computes nothing to check
    printf("| %s%s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s%.1e%s | %.2f | %.2f | %.2f | %.2f |\n", c.program,
           modes[c.mode], c.rows, c.weights, c.n, c.cols, c.k_tile, c.stages, c.threads, c.splits, grid.x * grid.y,
           c.smem / 1024, checked ? "" : "(", err, checked ? (err > 1e-2 ? " FAIL" : "") : ")", single, us, floor_us,
           floor_us / us);
  }
  return 0;
}
