// RUN: mirage-opt %s -pass-pipeline='builtin.module(mirage-lower-to-gpu,mirage-gpu-to-ptx{chip=sm_90})' | FileCheck %s
// RUN: mirage-opt %s -pass-pipeline='builtin.module(mirage-lower-to-gpu{chip=sm_80},mirage-gpu-to-ptx{chip=sm_80 opt-level=2})' | FileCheck %s --check-prefix=SM80
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
