// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu)' | FileCheck %s
// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu{fuse-split-k=false})' | FileCheck %s --check-prefix=UNFUSED
// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu{constant-inputs=1})' | FileCheck %s --check-prefix=CONST
// RUN: env MIRAGE_SPLIT_K_CLUSTER=0 mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu)' | FileCheck %s --check-prefix=COUNTERS

// Mirage's RMSNorm + Linear plan (grid 2, for-loop 4): one gpu.func with the block graph's structure.

// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @main_kernels
// CHECK: gpu.func @main_k0(%[[X:.*]]: memref<4x256xf16>, %[[W:.*]]: memref<256x128xf16>, %[[O:.*]]: memref<4x128xf16>) kernel
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK-SAME: known_grid_size = array<i32: 2, 1, 1>
// CHECK: gpu.thread_id x
// CHECK: gpu.block_id x
// CHECK: gpu.dynamic_shared_memory
// Accumulators (f32, shared memory) are zeroed before the loop.
// CHECK-DAG: memref.view {{.*}} to memref<4x64xf32, #gpu.address_space<workgroup>>
// CHECK-DAG: memref.view {{.*}} to memref<4x1xf32, #gpu.address_space<workgroup>>
// Tensor-core operand tiles (X's 4 x 64, W's 64 x 64) keep whole unpadded rows; their 16-byte chunks
// are swizzled (chunk q of row r stored at q ^ (r % 8)): no bank conflicts on fragment loads.
// A cp.async ring (4 stages: the loop's 4 iterations): the tiles of the first 3 iterations are copied
// global -> shared (16 bytes each, L1 bypassed, to their swizzled chunk) before the loop, one
// commit group per iteration.
// CHECK: %[[XQ:.*]] = arith.xori
// CHECK-NEXT: nvgpu.device_async_copy %[[X]][{{.*}}], %{{.*}}[%{{.*}}, %[[XQ]]], 8 {bypassL1} : memref<4x256xf16> to memref<4x64xf16, #gpu.address_space<workgroup>>
// CHECK: %[[WQ:.*]] = arith.xori
// CHECK-NEXT: nvgpu.device_async_copy %[[W]][{{.*}}], %{{.*}}[%{{.*}}, %[[WQ]]], 8 {bypassL1} : memref<256x128xf16> to memref<64x64xf16, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_create_group
// CHECK: gpu.barrier
// The loop carries the tensor-core accumulators; each iteration refills the stage the previous one
// used with iteration it + 3 (none past the end: the group stays, empty), waits for its own group
// and makes every thread's copies visible with a barrier.
// CHECK: scf.for %[[IT:.*]] = %c0 to %c4 step %c1 iter_args({{.*}}) -> (vector<2x2xf32>,
// CHECK: %[[AHEAD:.*]] = arith.addi %[[IT]], %c3 : index
// CHECK: %[[LIVE:.*]] = arith.cmpi ult, %[[AHEAD]], %c4 : index
// CHECK-NEXT: scf.if %[[LIVE]] {
// CHECK: nvgpu.device_async_copy %[[W]][{{.*}}], {{.*}}, 8 {bypassL1}
// CHECK: nvgpu.device_async_create_group
// CHECK-NEXT: nvgpu.device_async_wait %{{.*}} {numGroups = 3 : i32}
// CHECK: gpu.barrier
// The matmul on tensor cores (f32 accumulators in registers), fused with its accumulator; the rms
// accumulator's sums of squares stay in loop-carried registers too (no shuffle in the loop); a
// barrier closes the iteration.
// CHECK: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK-NOT: gpu.shuffle
// CHECK: gpu.barrier
// CHECK-NEXT: scf.yield {{.*}} : vector<2x2xf32>, {{.*}}, f32
// CHECK-NEXT: } {mirage.forloop}
// After the loop: each row's lanes combine their sums with warp shuffles, once; then divide by the
// rms, round to f16, store the tile with 128-bit stores (the output saver).
// CHECK: gpu.shuffle xor {{.*}}, %c16_i32, %c32_i32 : f32
// CHECK: math.sqrt
// CHECK: arith.divf {{.*}} fastmath<afn> : f32
// CHECK: arith.truncf {{.*}} : f32 to f16
// CHECK: vector.store {{.*}}, %[[O]][{{.*}}] {alignment = 16 : i64} : memref<4x128xf16>, vector<8xf16>
// CHECK: gpu.return
// The host function: destination passing, one launch per kernel.
// CHECK: func.func @main(%{{.*}}: memref<4x256xf16>, %{{.*}}: memref<256x128xf16>, %{{.*}}: memref<4x128xf16>)
// CHECK-SAME: mirage.num_inputs = 2 : i64, mirage.num_outputs = 1 : i64
// CHECK: gpu.launch_func @main_kernels::@main_k0 blocks in (%c2, %c1, %c1) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %{{.*}} args(
// CHECK-NOT: mirage_kernel
// CHECK-NOT: mirage_block
func.func @main(%arg0: tensor<4x256xf16>, %arg1: tensor<256x128xf16>) -> tensor<4x128xf16> {
  %0 = "mirage_kernel.graph_def"(%arg0, %arg1) ({
  ^bb0(%arg2: tensor<4x256xf16>, %arg3: tensor<256x128xf16>):
    %1 = "mirage_block.input_iterator"(%arg2) {fmap = 1 : i64, imap = array<i64: -1, -1, -1>} : (tensor<4x256xf16>) -> tensor<4x64xf16>
    %2 = "mirage_block.input_iterator"(%arg3) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<256x128xf16>) -> tensor<64x64xf16>
    %3 = "mirage_block.matmul"(%1, %2) : (tensor<4x64xf16>, tensor<64x64xf16>) -> tensor<4x64xf32>
    %4 = "mirage_block.accum_sum"(%3) : (tensor<4x64xf32>) -> tensor<4x64xf32>
    %5 = "mirage_block.accum_rms"(%1) {eps = 9.9999999999999995E-7 : f64, reduce_dim = 1 : i64} : (tensor<4x64xf16>) -> tensor<4x1xf32>
    %6 = "mirage_block.div"(%4, %5) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
    %7 = "mirage_block.cast"(%6) : (tensor<4x64xf32>) -> tensor<4x64xf16>
    %8 = "mirage_block.output_saver"(%7) {omap = array<i64: 1, -1, -1>} : (tensor<4x64xf16>) -> tensor<4x128xf16>
    gpu.yield %8 : tensor<4x128xf16>
  }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 2, 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x256xf16>, tensor<256x128xf16>) -> tensor<4x128xf16>
  return %0 : tensor<4x128xf16>
}

// -----

// Predefined kernel ops get kernels of their own; intermediate tensors are gpu.alloc temporaries.
// The original program kept by the superoptimizer (mirage.reference_function) is dropped. The exp
// kernel waits for the matmul before it; its 16 blocks, the matmul's one and the next call's fit the
// SMs at once, so it lets the next launch at entry, before its wait (the 512-block kernel below: after).

// CHECK-LABEL: gpu.module @f_kernels
// CHECK: gpu.func @f_k0(%{{.*}}: memref<16x64xf32>, %{{.*}}: memref<64x32xf32>, %{{.*}}: memref<16x32xf32>) kernel
// CHECK: gpu.func @f_k1(%{{.*}}: memref<16x32xf32>, %{{.*}}: memref<16x32xf32>) kernel
// CHECK-NOT: math.exp
// CHECK: nvvm.griddepcontrol  launch_dependents
// CHECK-NOT: math.exp
// CHECK: nvvm.griddepcontrol  wait
// CHECK: math.exp
// CHECK: func.func @f(%{{.*}}: memref<16x64xf32>, %{{.*}}: memref<64x32xf32>, %[[OUT:.*]]: memref<16x32xf32>)
// CHECK: %[[TMP:.*]] = gpu.alloc () : memref<16x32xf32>
// CHECK: gpu.launch_func @f_kernels::@f_k0 {{.*}} args(%{{.*}} : memref<16x64xf32>, %{{.*}} : memref<64x32xf32>, %[[TMP]] : memref<16x32xf32>)
// CHECK: gpu.launch_func @f_kernels::@f_k1 {{.*}} args(%[[TMP]] : memref<16x32xf32>, %[[OUT]] : memref<16x32xf32>)
// CHECK: gpu.dealloc %[[TMP]]
// CHECK-NOT: @f__mirage_ref0
func.func @f(%a: tensor<16x64xf32>, %b: tensor<64x32xf32>) -> tensor<16x32xf32> {
  %0 = "mirage_kernel.matmul"(%a, %b) {mirage.reference = @f__mirage_ref0} : (tensor<16x64xf32>, tensor<64x32xf32>) -> tensor<16x32xf32>
  %1 = "mirage_kernel.exp"(%0) {mirage.reference = @f__mirage_ref0} : (tensor<16x32xf32>) -> tensor<16x32xf32>
  return %1 : tensor<16x32xf32>
}
func.func private @f__mirage_ref0(%a: tensor<16x64xf32>, %b: tensor<64x32xf32>) -> tensor<16x32xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.matmul"(%a, %b) : (tensor<16x64xf32>, tensor<64x32xf32>) -> tensor<16x32xf32>
  %1 = "mirage_kernel.exp"(%0) : (tensor<16x32xf32>) -> tensor<16x32xf32>
  return %1 : tensor<16x32xf32>
}

// -----

// Kernels of one program overlap (programmatic dependent launch) where the later one has work to do
// before it needs the earlier one's results: the matmul copies the tiles of the program's input %b
// for its ring's first stages, then waits for the kernel before it, then copies the tiles that
// kernel wrote (exp(%a)). The kernel before lets it launch early; the host launches it marked
// {mirage.overlap}. (In @f above the exp reads only what the matmul wrote: plain launches.)

// CHECK-LABEL: gpu.module @g_kernels
// CHECK: gpu.func @g_k0(
// CHECK: nvvm.griddepcontrol  launch_dependents
// CHECK-NOT: nvvm.griddepcontrol  wait
// CHECK: gpu.func @g_k1(%[[H:.*]]: memref<16x256xf16>, %[[B:.*]]: memref<256x64xf16>, %{{.*}}: memref<16x64xf16>)
// CHECK-NOT: launch_dependents
// CHECK-NOT: device_async_copy %[[H]]
// CHECK: nvgpu.device_async_copy %[[B]]
// CHECK-NOT: device_async_copy %[[H]]
// CHECK: nvvm.griddepcontrol  wait
// CHECK-NOT: gpu.barrier
// CHECK: nvgpu.device_async_copy %[[H]]
// CHECK: func.func @g(
// CHECK: gpu.launch_func @g_kernels::@g_k0 {{.*}} {mirage.estimate_us = {{[^,]*}}}{{$}}
// CHECK: gpu.launch_func @g_kernels::@g_k1 {{.*}} {mirage.estimate_us = {{.*}}, mirage.overlap}
func.func @g(%a: tensor<16x256xf16>, %b: tensor<256x64xf16>) -> tensor<16x64xf16> {
  %0 = "mirage_kernel.exp"(%a) : (tensor<16x256xf16>) -> tensor<16x256xf16>
  %1 = "mirage_kernel.matmul"(%0, %b) : (tensor<16x256xf16>, tensor<256x64xf16>) -> tensor<16x64xf16>
  return %1 : tensor<16x64xf16>
}

// -----

// A split reduction (grid y splits K: partial sums side by side) and its combine kernel (a for-loop
// over the partials) run as one kernel. On sm_90, 2 splits: the two blocks of an output tile are one
// thread-block cluster; each keeps its partials in shared memory, and after a cluster barrier (a
// release fence of the block's own shared memory, a relaxed arrive, the wait) the first reads its
// peer's (nvvm.mapa, distributed shared memory) and runs the combine; a last cluster barrier keeps
// the peer until then. With MIRAGE_SPLIT_K_CLUSTER=0 (COUNTERS): each block publishes
// its partials and counts itself on its output tile's counter; the last block of a tile runs the
// combine and resets the counter. The counters are a temporary the host function zeroes once.

// CHECK-LABEL: gpu.module @sk_kernels
// CHECK: gpu.func @sk_k0(%{{.*}}: memref<4x256xf16>, %{{.*}}: memref<256x64xf16>, %{{.*}}: memref<256x64xf16>, %{{.*}}: memref<8x64xf32>, %{{.*}}: memref<8x64xf32>, %{{.*}}: memref<4x64xf16>, %[[CNT:.*]]: memref<2xi32>) kernel
// CHECK-SAME: known_grid_size = array<i32: 2, 2, 1>
// CHECK-SAME: nvvm.cluster_dim = array<i32: 1, 2, 1>
// CHECK: nvgpu.mma.sync
// CHECK-NOT: memref.atomic_rmw
// CHECK: nvvm.fence.sync_restrict {order = #nvvm.mem_order<release>}
// CHECK-NEXT: nvvm.cluster.arrive.relaxed {aligned}
// CHECK-NEXT: nvvm.cluster.wait {aligned}
// CHECK: scf.if %{{.*}} {
// CHECK: nvvm.mapa %{{.*}}, %{{.*}} : !llvm.ptr<3> -> !llvm.ptr<7>
// CHECK: llvm.load %{{.*}} : !llvm.ptr<7> -> vector<4xf32>
// CHECK: math.exp
// CHECK: nvvm.cluster.arrive.relaxed {aligned}
// CHECK-NEXT: nvvm.cluster.wait {aligned}
// CHECK-NEXT: gpu.return
// COUNTERS-LABEL: gpu.module @sk_kernels
// COUNTERS-NOT: nvvm.cluster_dim
// COUNTERS: llvm.fence syncscope("device") release
// COUNTERS-NEXT: gpu.barrier
// COUNTERS: memref.atomic_rmw addi %{{.*}}, %[[CNT:.*]][%{{.*}}] : (i32, memref<2xi32>) -> i32
// COUNTERS: memref.store %c0_i32, %[[CNT]]
// COUNTERS: gpu.barrier
// COUNTERS: scf.if %{{.*}} {
// COUNTERS-NEXT: llvm.fence syncscope("device") acquire
// COUNTERS: math.exp
// COUNTERS: gpu.return
// CHECK-NOT: gpu.func @sk_k1
// CHECK: %[[C:.*]] = gpu.alloc () : memref<2xi32>
// CHECK-NEXT: gpu.memset %[[C]], %c0_i32 : memref<2xi32>, i32
// CHECK: gpu.launch_func @sk_kernels::@sk_k0 blocks in (%c2, %c2, %c1)
// CHECK-NOT: gpu.launch_func

// Declared constant, its 4 blocks overlap the call before too (no later kernel copies early),
// launched spread: with the shared memory of one block an SM (115728 bytes), they cannot crowd.
// CONST-LABEL: gpu.module @sk_kernels
// CONST: nvvm.griddepcontrol  launch_dependents
// CONST: nvvm.griddepcontrol  wait
// CONST: func.func @sk(
// CONST: %[[SPREAD:.*]] = arith.constant 115728 : i32
// CONST: gpu.launch_func @sk_kernels::@sk_k0 {{.*}} dynamic_shared_memory_size %[[SPREAD]] {{.*}}, mirage.overlap}

// UNFUSED-LABEL: gpu.module @sk_kernels
// UNFUSED: gpu.func @sk_k0(
// UNFUSED-NOT: memref.atomic_rmw
// UNFUSED: gpu.func @sk_k1(
// UNFUSED: gpu.launch_func @sk_kernels::@sk_k0 blocks in (%c2, %c2, %c1)
// UNFUSED: gpu.launch_func @sk_kernels::@sk_k1 blocks in (%c2, %c1, %c1)
func.func @sk(%arg0: tensor<4x256xf16>, %arg1: tensor<256x64xf16>, %arg2: tensor<256x64xf16>) -> tensor<4x64xf16> {
  %0:2 = "mirage_kernel.graph_def"(%arg0, %arg1, %arg2) ({
  ^bb0(%arg3: tensor<4x256xf16>, %arg4: tensor<256x64xf16>, %arg5: tensor<256x64xf16>):
    %2 = "mirage_block.input_iterator"(%arg3) {fmap = 1 : i64, imap = array<i64: -1, 1, -1>} : (tensor<4x256xf16>) -> tensor<4x64xf16>
    %3 = "mirage_block.input_iterator"(%arg4) {fmap = 0 : i64, imap = array<i64: 1, 0, -1>} : (tensor<256x64xf16>) -> tensor<64x32xf16>
    %4 = "mirage_block.matmul"(%2, %3) : (tensor<4x64xf16>, tensor<64x32xf16>) -> tensor<4x32xf32>
    %5 = "mirage_block.accum_sum"(%4) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %6 = "mirage_block.output_saver"(%5) {omap = array<i64: 1, 0, -1>} : (tensor<4x32xf32>) -> tensor<8x64xf32>
    %7 = "mirage_block.input_iterator"(%arg5) {fmap = 0 : i64, imap = array<i64: 1, 0, -1>} : (tensor<256x64xf16>) -> tensor<64x32xf16>
    %8 = "mirage_block.matmul"(%2, %7) : (tensor<4x64xf16>, tensor<64x32xf16>) -> tensor<4x32xf32>
    %9 = "mirage_block.accum_sum"(%8) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %10 = "mirage_block.output_saver"(%9) {omap = array<i64: 1, 0, -1>} : (tensor<4x32xf32>) -> tensor<8x64xf32>
    gpu.yield %6, %10 : tensor<8x64xf32>, tensor<8x64xf32>
  }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 2 : i64, grid_dim = array<i64: 2, 2, 1>, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x256xf16>, tensor<256x64xf16>, tensor<256x64xf16>) -> (tensor<8x64xf32>, tensor<8x64xf32>)
  %1 = "mirage_kernel.graph_def"(%0#0, %0#1) ({
  ^bb0(%arg3: tensor<8x64xf32>, %arg4: tensor<8x64xf32>):
    %2 = "mirage_block.input_iterator"(%arg3) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<8x64xf32>) -> tensor<4x32xf32>
    %3 = "mirage_block.accum_sum"(%2) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %4 = "mirage_block.input_iterator"(%arg4) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<8x64xf32>) -> tensor<4x32xf32>
    %5 = "mirage_block.accum_sum"(%4) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %6 = "mirage_block.silu"(%3) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %7 = "mirage_block.mul"(%6, %5) : (tensor<4x32xf32>, tensor<4x32xf32>) -> tensor<4x32xf32>
    %8 = "mirage_block.cast"(%7) : (tensor<4x32xf32>) -> tensor<4x32xf16>
    %9 = "mirage_block.output_saver"(%8) {omap = array<i64: 1, -1, -1>} : (tensor<4x32xf16>) -> tensor<4x64xf16>
    gpu.yield %9 : tensor<4x64xf16>
  }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 2 : i64, grid_dim = array<i64: 2, 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<8x64xf32>, tensor<8x64xf32>) -> tensor<4x64xf16>
  return %1 : tensor<4x64xf16>
}

// -----

// The split reduction at a realistic size (512 blocks: more than half of the SMs' slots for it).
// With argument 1 declared constant (a weight no work before the call writes), the first kernel
// overlaps whatever runs before the call: it lets the next launch early, copies only %arg1's tiles,
// waits, then copies X's; the host function records the declaration and marks the launch.
// Without the declaration it overlaps all the same (no later kernel copies early) but waits first.
// CHECK-LABEL: gpu.module @big_kernels
// CHECK-NOT: device_async_copy
// CHECK: nvvm.griddepcontrol  wait
// CHECK-NEXT: nvvm.griddepcontrol  launch_dependents
// CHECK: nvgpu.device_async_copy
// CHECK: func.func @big(
// CONST-LABEL: gpu.module @big_kernels
// CONST: gpu.func @big_k0(%[[X:.*]]: memref<4x4096xf16>, %[[W1:.*]]: memref<4096x4096xf16>, %[[W3:.*]]: memref<4096x4096xf16>
// CONST: nvvm.griddepcontrol  launch_dependents
// CONST-NOT: device_async_copy %[[X]]
// CONST-NOT: device_async_copy %[[W3]]
// CONST: nvgpu.device_async_copy %[[W1]]
// CONST-NOT: device_async_copy %[[X]]
// CONST: nvvm.griddepcontrol  wait
// CONST: nvgpu.device_async_copy %[[X]]
// CONST: func.func @big({{.*}}) attributes {mirage.constant_inputs = array<i64: 1>
// CONST: gpu.launch_func @big_kernels::@big_k0 {{.*}}, mirage.overlap}
func.func @big(%arg0: tensor<4x4096xf16>, %arg1: tensor<4096x4096xf16>, %arg2: tensor<4096x4096xf16>) -> tensor<4x4096xf16> {
  %0:2 = "mirage_kernel.graph_def"(%arg0, %arg1, %arg2) ({
  ^bb0(%arg3: tensor<4x4096xf16>, %arg4: tensor<4096x4096xf16>, %arg5: tensor<4096x4096xf16>):
    %2 = "mirage_block.input_iterator"(%arg3) {fmap = 1 : i64, imap = array<i64: -1, 1, -1>} : (tensor<4x4096xf16>) -> tensor<4x128xf16>
    %3 = "mirage_block.input_iterator"(%arg4) {fmap = 0 : i64, imap = array<i64: 1, 0, -1>} : (tensor<4096x4096xf16>) -> tensor<128x32xf16>
    %4 = "mirage_block.matmul"(%2, %3) : (tensor<4x128xf16>, tensor<128x32xf16>) -> tensor<4x32xf32>
    %5 = "mirage_block.accum_sum"(%4) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %6 = "mirage_block.output_saver"(%5) {omap = array<i64: 1, 0, -1>} : (tensor<4x32xf32>) -> tensor<16x4096xf32>
    %7 = "mirage_block.input_iterator"(%arg5) {fmap = 0 : i64, imap = array<i64: 1, 0, -1>} : (tensor<4096x4096xf16>) -> tensor<128x32xf16>
    %8 = "mirage_block.matmul"(%2, %7) : (tensor<4x128xf16>, tensor<128x32xf16>) -> tensor<4x32xf32>
    %9 = "mirage_block.accum_sum"(%8) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %10 = "mirage_block.output_saver"(%9) {omap = array<i64: 1, 0, -1>} : (tensor<4x32xf32>) -> tensor<16x4096xf32>
    gpu.yield %6, %10 : tensor<16x4096xf32>, tensor<16x4096xf32>
  }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 8 : i64, grid_dim = array<i64: 128, 4, 1>, operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4096xf16>, tensor<4096x4096xf16>, tensor<4096x4096xf16>) -> (tensor<16x4096xf32>, tensor<16x4096xf32>)
  %1 = "mirage_kernel.graph_def"(%0#0, %0#1) ({
  ^bb0(%arg3: tensor<16x4096xf32>, %arg4: tensor<16x4096xf32>):
    %2 = "mirage_block.input_iterator"(%arg3) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<16x4096xf32>) -> tensor<4x32xf32>
    %3 = "mirage_block.accum_sum"(%2) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %4 = "mirage_block.input_iterator"(%arg4) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<16x4096xf32>) -> tensor<4x32xf32>
    %5 = "mirage_block.accum_sum"(%4) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %6 = "mirage_block.silu"(%3) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %7 = "mirage_block.mul"(%6, %5) : (tensor<4x32xf32>, tensor<4x32xf32>) -> tensor<4x32xf32>
    %8 = "mirage_block.cast"(%7) : (tensor<4x32xf32>) -> tensor<4x32xf16>
    %9 = "mirage_block.output_saver"(%8) {omap = array<i64: 1, -1, -1>} : (tensor<4x32xf16>) -> tensor<4x4096xf16>
    gpu.yield %9 : tensor<4x4096xf16>
  }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 128, 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<16x4096xf32>, tensor<16x4096xf32>) -> tensor<4x4096xf16>
  return %1 : tensor<4x4096xf16>
}
