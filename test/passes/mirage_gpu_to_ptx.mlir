// RUN: mirage-opt %s -pass-pipeline='builtin.module(mirage-lower-to-gpu,mirage-gpu-to-ptx{chip=sm_90})' | FileCheck %s
// RUN: mirage-opt %s -pass-pipeline='builtin.module(mirage-lower-to-gpu{clusters=false},mirage-gpu-to-ptx{chip=sm_80 opt-level=2})' | FileCheck %s --check-prefix=SM80
// RUN: not mirage-opt %s -pass-pipeline='builtin.module(mirage-lower-to-gpu,mirage-gpu-to-ptx{chip=sm_80})' 2>&1 | FileCheck %s --check-prefix=NOCLUSTERS
// RUN: rm -rf %t && mirage-compile %s -o %t -q --no-ptxas
// RUN: FileCheck %s --check-prefix=PTX < %t/main_kernels.ptx
// RUN: FileCheck %s --check-prefix=MANIFEST < %t/manifest.json
// RUN: %if ptxas %{ %ptxas --gpu-name sm_90 %t/main_kernels.ptx -o %t/main_kernels.cubin %}

// The gpu.module becomes a gpu.binary holding PTX; the host function still launches its kernels.
// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.binary @main_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">
// CHECK-SAME: .target sm_90
// CHECK-SAME: .extern .shared .align 16 .b8 __dynamic_shmem__0[]
// CHECK-SAME: cp.async.cg.shared.global
// CHECK-SAME: bar.sync
// CHECK: func.func @main(
// CHECK: gpu.launch_func @main_kernels::@main_k0
// CHECK-NOT: gpu.module

// SM80: gpu.binary @main_kernels [#gpu.object<#nvvm.target<chip = "sm_80", features = "+ptx80">, properties = {{.*}}O = 2 : i32}
// SM80-SAME: .target sm_80

// A program of two kernels: on sm_90 they overlap (griddepcontrol in the PTX, the second launch marked
// mirage.overlap); sm_80 has no programmatic dependent launch, so neither is there.
// CHECK: gpu.binary @g_kernels
// CHECK-SAME: griddepcontrol.launch_dependents
// CHECK-SAME: griddepcontrol.wait
// CHECK: gpu.launch_func @g_kernels::@g_k1 {{.*}}mirage.overlap
// SM80: gpu.binary @g_kernels
// SM80-NOT: griddepcontrol
// SM80-NOT: mirage.overlap

// The PTX file mirage-compile writes: one entry per kernel, dynamic shared memory declared extern (not
// demoted to a one-byte static variable), 16-byte asynchronous copies and global stores, tensor-core MMAs,
// warp shuffles.
// PTX: .version 8.0
// PTX: .target sm_90
// PTX: .extern .shared .align 16 .b8 __dynamic_shmem__0[];
// PTX: .visible .entry main_k0(
// PTX: .maxntid 128, 1, 1
// PTX-DAG: cp.async.cg.shared.global [{{.*}}], [{{.*}}], 16
// PTX-DAG: cp.async.wait_group
// PTX-DAG: bar.sync 0;
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// PTX-DAG: shfl.sync.bfly.b32
// PTX-DAG: st.global.v4.b32

// MANIFEST: "format": "mirage-gpu"
// MANIFEST: "chip": "sm_90"
// MANIFEST: "name": "main_k0"
// MANIFEST: "ptx": "main_kernels.ptx"

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

func.func @g(%a: tensor<16x256xf16>, %b: tensor<256x64xf16>) -> tensor<16x64xf16> {
  %0 = "mirage_kernel.exp"(%a) : (tensor<16x256xf16>) -> tensor<16x256xf16>
  %1 = "mirage_kernel.matmul"(%0, %b) : (tensor<16x256xf16>, tensor<256x64xf16>) -> tensor<16x64xf16>
  return %1 : tensor<16x64xf16>
}

// A fused split reduction whose two splits meet in a thread-block cluster: the cluster's extent is
// fixed in the PTX (a plain launch makes the clusters), the partials published and read across the
// cluster barrier. sm_80 has no clusters: lowered for them, the kernel is an error there, located at
// the op it was lowered from; lowered with clusters=false, the last block of each tile combines.
// CHECK: gpu.binary @sk_kernels
// CHECK-SAME: .explicitcluster
// CHECK-SAME: .reqnctapercluster 1, 2, 1
// CHECK-SAME: barrier.cluster.arrive;
// CHECK-SAME: barrier.cluster.wait;
// SM80: gpu.binary @sk_kernels
// SM80-NOT: cluster
// SM80-SAME: atom.global.add.u32
// NOCLUSTERS: mirage_gpu_to_ptx.mlir:[[@LINE+2]]:10: error: this kernel runs as thread-block clusters, which sm_80 does not have (sm_90 and later): lower with mirage-lower-to-gpu{clusters=false}
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
