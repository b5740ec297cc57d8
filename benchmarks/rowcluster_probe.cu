// Would ntrans (rms_norm(H + alpha * (rms_norm(X) - H)), rows of 4096 f16) be faster with each row split
// over a thread-block cluster? Its kernel today: one block of 128 threads a row, each thread 12 loads of
// 16 bytes after the grid wait (24 KB a block on one SM), two block reductions. This probe times that
// kernel's shape and cluster versions of it, C blocks a row, each block's partial sums written into every
// block of the cluster (st.shared::cluster) and one cluster barrier per reduction, as gpu.py sees them:
// 16 calls a graph, each a programmatic dependent of the one before (wait and trigger at entry, L2
// prefetch of the block's slice before the wait), inputs rotated past L2. Each variant is checked against
// a host reference first.
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o rowcluster_probe rowcluster_probe.cu
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

#include "probe_replay.cuh"

constexpr int N = 4096, CALLS = 16, GRAPHS = 8, SMS = 132, SHARED_PER_SM = 228 * 1024;
constexpr float EPS = 1e-6f;

__device__ __forceinline__ uint4 load_volatile(const void* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.b32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}

// Stores v at `slot` of shared memory in block `rank` of this cluster.
__device__ __forceinline__ void store_cluster(float* slot, unsigned rank, float v) {
  unsigned local = (unsigned)__cvta_generic_to_shared(slot), remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local), "r"(rank));
  asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(remote), "f"(v) : "memory");
}

__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }

// The row's sum of `v` over its C blocks of Threads threads: butterfly in the warp, then each warp's
// partial into every block's `slots` (C * warps of them) and one barrier (the block's, or the cluster's).
template <int C, int Threads>
__device__ float row_sum(float v, float* slots) {
  constexpr int Warps = Threads / 32;
  for (int d = 16; d; d /= 2) v += __shfl_xor_sync(~0u, v, d);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (C == 1) {
    if (lane == 0) slots[warp] = v;
    __syncthreads();
  } else {
    const unsigned me = cluster_rank();
    if (lane < C) store_cluster(&slots[me * Warps + warp], lane, v);
    cluster_arrive();
    cluster_wait();
  }
  float s = 0;
#pragma unroll
  for (int i = 0; i < C * Warps; ++i) s += slots[i];
  return s;
}

// Block b handles row b / C, its part b % C: Chunks 16-byte chunks of H, X and alpha a thread.
template <int C, int Threads>
__global__ void __launch_bounds__(Threads) ntrans_kernel(const __half* h, const __half* x, const __half* alpha,
                                                         __half* out) {
  constexpr int Chunks = N / 8 / C / Threads, Warps = Threads / 32;
  static_assert(Chunks >= 1 && N % (8 * C * Threads) == 0, "a thread holds whole chunks");
  __shared__ float slots[2][C * Warps];
  const int row = blockIdx.x / C, part = blockIdx.x % C;
  const size_t base = (size_t)row * N + (size_t)part * (N / C);
  // The block's slice of each input: N / C halves, 128-byte lines prefetched into L2 before the wait.
  constexpr int Lines = N / C * 2 / 128;
  for (int l = threadIdx.x; l < 3 * Lines; l += Threads) {
    const __half* t = l < Lines ? h : l < 2 * Lines ? x : alpha;
    asm volatile("prefetch.global.L2 [%0];" ::"l"((const char*)(t + base) + (l % Lines) * 128));
  }
  if (C > 1) asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");  // the cluster's blocks started
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  uint4 hv[Chunks], xv[Chunks], av[Chunks];
#pragma unroll
  for (int c = 0; c < Chunks; ++c) {
    const size_t at = base + (size_t)(c * Threads + threadIdx.x) * 8;
    xv[c] = load_volatile(x + at);
    av[c] = load_volatile(alpha + at);
    hv[c] = load_volatile(h + at);
  }
  float xs[Chunks * 8], hs[Chunks * 8], as[Chunks * 8], ss = 0;
#pragma unroll
  for (int c = 0; c < Chunks; ++c)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float2 xf = __half22float2(reinterpret_cast<__half2*>(&xv[c])[e]);
      float2 hf = __half22float2(reinterpret_cast<__half2*>(&hv[c])[e]);
      float2 af = __half22float2(reinterpret_cast<__half2*>(&av[c])[e]);
      xs[c * 8 + 2 * e] = xf.x, xs[c * 8 + 2 * e + 1] = xf.y;
      hs[c * 8 + 2 * e] = hf.x, hs[c * 8 + 2 * e + 1] = hf.y;
      as[c * 8 + 2 * e] = af.x, as[c * 8 + 2 * e + 1] = af.y;
      ss += xf.x * xf.x + xf.y * xf.y;
    }
  if (C > 1) cluster_wait();
  const float rx = rsqrtf(row_sum<C, Threads>(ss, slots[0]) / N + EPS);
  float ys = 0;
#pragma unroll
  for (int i = 0; i < Chunks * 8; ++i) {
    xs[i] = hs[i] + as[i] * (xs[i] * rx - hs[i]);
    ys += xs[i] * xs[i];
  }
  const float ry = rsqrtf(row_sum<C, Threads>(ys, slots[1]) / N + EPS);
#pragma unroll
  for (int c = 0; c < Chunks; ++c) {
    uint4 o;
#pragma unroll
    for (int e = 0; e < 4; ++e)
      reinterpret_cast<__half2*>(&o)[e] = __floats2half2_rn(xs[c * 8 + 2 * e] * ry, xs[c * 8 + 2 * e + 1] * ry);
    *reinterpret_cast<uint4*>(out + base + (size_t)(c * Threads + threadIdx.x) * 8) = o;
  }
}

__global__ void empty_kernel() {}

using Kernel = void (*)(const __half*, const __half*, const __half*, __half*);

struct Variant {
  const char* name;
  int cluster, threads;
  Kernel kernel;
};

// The dynamic shared memory with which an SM holds at most ceil(blocks / SMS) blocks (plan.spread_shared_bytes).
int spread_bytes(int blocks) {
  int per_sm = (blocks + SMS - 1) / SMS;
  return (SHARED_PER_SM / (per_sm + 1) - 1024 + 16) / 16 * 16;
}

float host_half(__half v) { return __half2float(v); }

int main() {
  std::vector<Variant> variants = {
      {"1x128 (as built)", 1, 128, ntrans_kernel<1, 128>}, {"1x256", 1, 256, ntrans_kernel<1, 256>},
      {"2x128", 2, 128, ntrans_kernel<2, 128>},            {"4x128", 4, 128, ntrans_kernel<4, 128>},
      {"4x64", 4, 64, ntrans_kernel<4, 64>},               {"8x64", 8, 64, ntrans_kernel<8, 64>},
      {"8x32", 8, 32, ntrans_kernel<8, 32>},
  };
  for (auto& v : variants) {
    CHECK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
    CHECK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  }
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  {
    float us = median_replay_us(stream, 1, [&](int) {
      for (int call = 0; call < CALLS; ++call) empty_kernel<<<1, 32, 0, stream>>>();
    }) / CALLS;
    printf("empty kernel, %d a graph: %.2f us a launch\n", CALLS, us);
  }
  printf("| rows | variant | blocks | mode | us |\n|---|---|---|---|---|\n");
  for (int rows : {8, 64}) {
    const size_t elems = (size_t)rows * N, sets = CALLS * GRAPHS;
    std::vector<__half> host(3 * elems);
    for (size_t i = 0; i < host.size(); ++i) host[i] = __float2half((float)((i * 2654435761u) % 2001) / 1000.f - 1.f);
    std::vector<float> ref(elems);
    for (int r = 0; r < rows; ++r) {
      const __half *h = &host[r * N], *x = &host[elems + r * N], *a = &host[2 * elems + r * N];
      double sx = 0, sy = 0;
      for (int i = 0; i < N; ++i) sx += (double)host_half(x[i]) * host_half(x[i]);
      double rx = 1 / std::sqrt(sx / N + EPS);
      for (int i = 0; i < N; ++i) {
        double y = host_half(h[i]) + host_half(a[i]) * (host_half(x[i]) * rx - host_half(h[i]));
        ref[r * N + i] = (float)y, sy += y * y;
      }
      double ry = 1 / std::sqrt(sy / N + EPS);
      for (int i = 0; i < N; ++i) ref[r * N + i] *= (float)ry;
    }
    __half *in, *out;  // `sets` copies of (H, X, alpha), one after the other: rotated past L2
    CHECK(cudaMalloc(&in, sets * 3 * elems * 2));
    CHECK(cudaMalloc(&out, sets * elems * 2));
    for (size_t s = 0; s < sets; ++s) CHECK(cudaMemcpy(in + s * 3 * elems, host.data(), 3 * elems * 2, cudaMemcpyHostToDevice));
    for (auto& v : variants) {
      const int blocks = rows * v.cluster;
      for (int mode = 0; mode < 2; ++mode) {
        std::vector<cudaLaunchAttribute> attributes;
        if (mode == 1) {
          attributes.emplace_back();
          attributes.back().id = cudaLaunchAttributeProgrammaticStreamSerialization;
          attributes.back().val.programmaticStreamSerializationAllowed = 1;
        }
        if (v.cluster > 1) {
          attributes.emplace_back();
          attributes.back().id = cudaLaunchAttributeClusterDimension;
          attributes.back().val.clusterDim.x = v.cluster;
          attributes.back().val.clusterDim.y = attributes.back().val.clusterDim.z = 1;
        }
        cudaLaunchConfig_t config = {dim3(blocks), dim3(v.threads), (size_t)spread_bytes(blocks), stream,
                                     attributes.data(), (unsigned)attributes.size()};
        auto launch = [&](size_t set) {
          CHECK(cudaLaunchKernelEx(&config, v.kernel, in + set * 3 * elems, in + set * 3 * elems + elems,
                                   in + set * 3 * elems + 2 * elems, out + set * elems));
        };
        CHECK(cudaMemset(out, 0xff, elems * 2));  // NaN-poisoned
        launch(0);
        CHECK(cudaStreamSynchronize(stream));
        std::vector<__half> got(elems);
        CHECK(cudaMemcpy(got.data(), out, elems * 2, cudaMemcpyDeviceToHost));
        double worst = 0;
        for (size_t i = 0; i < elems; ++i) worst = std::fmax(worst, std::fabs(host_half(got[i]) - ref[i]));
        if (!(worst < 1e-2)) { printf("%s rows %d: wrong (max error %g)\n", v.name, rows, worst); continue; }
        float us = median_replay_us(stream, GRAPHS, [&](int graph) {
          for (int call = 0; call < CALLS; ++call) launch((size_t)graph * CALLS + call);
        }) / CALLS;
        printf("| %d | %s | %d | %s | %.2f |\n", rows, v.name, blocks, mode ? "pdl" : "serial", us);
      }
    }
    CHECK(cudaFree(in));
    CHECK(cudaFree(out));
  }
  return 0;
}
