// The cp.async ring both streaming probes use (stream_probe.cu, gemv_probe.cu): STAGES shared-memory
// stages of `stage` bytes, STAGES - 1 filled ahead; `issue(i)` copies stage i's bytes into its slot
// (ring + (i % STAGES) * stage); each stage is summed once it lands, so the loads are not dead.
#pragma once

constexpr int THREADS = 256;
constexpr int STAGES = 4;

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(s), "l"(gmem));
}

// The ring's steady state: `issue(i)` refills the slot of stage i, Stages - 1 ahead of the stage summed.
template <int Stages, int Threads, typename Issue>
__device__ float ring_loop(const char* ring, int stage, int iters, Issue issue) {
  float acc = 0.f;
  for (int it = 0; it < iters; ++it) {
    if (it + Stages - 1 < iters) issue(it + Stages - 1);
    asm volatile("cp.async.commit_group;\n");
    asm volatile("cp.async.wait_group %0;\n" :: "n"(Stages - 1));
    __syncthreads();
    const float* f = (const float*)(ring + (it % Stages) * stage);
    for (int c = threadIdx.x; c < stage / 4; c += Threads) acc += f[c];
    __syncthreads();
  }
  return acc;
}

// Stages and Threads: the ring's depth and the block size (ring_probe.cu varies them).
template <int Stages = STAGES, int Threads = THREADS, typename Issue>
__device__ float ring_stream(const char* ring, int stage, int iters, Issue issue) {
  for (int s = 0; s < Stages - 1; ++s) {
    if (s < iters) issue(s);
    asm volatile("cp.async.commit_group;\n");
  }
  return ring_loop<Stages, Threads>(ring, stage, iters, issue);
}

// The ring as a programmatic dependent launch runs it (blockgen.GridDependency): `early(i)` copies
// stage i's bytes that no kernel before writes (W), for the first Stages - 1 stages before
// griddepcontrol.wait; `after_wait()` runs next (its value is added to the sum); `late(i)` copies the
// rest of stage i (X's tile) after the wait.
template <int Stages, int Threads, typename Early, typename AfterWait, typename Late>
__device__ float dependent_ring_stream(const char* ring, int stage, int iters, Early early, AfterWait after_wait,
                                       Late late) {
  for (int s = 0; s < Stages - 1 && s < iters; ++s) early(s);
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  float acc = after_wait();
  for (int s = 0; s < Stages - 1; ++s) {
    if (s < iters) late(s);
    asm volatile("cp.async.commit_group;\n");  // stage 0's group holds every early copy: waited first
  }
  return acc + ring_loop<Stages, Threads>(ring, stage, iters, [&](int i) {
    early(i);
    late(i);
  });
}
