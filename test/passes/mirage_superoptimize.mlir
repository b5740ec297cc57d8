// RUN: env MIRAGE_CACHE_DIR=%t mirage-opt %S/../inputs/rmsnorm_linear_small_f32.mlir -pass-pipeline='builtin.module(convert-linalg-to-mirage,mirage-superoptimize{time-budget=10})' | FileCheck %s
// The result keeps the original ops in a reference function and names it; mirage-verify accepts it.
// RUN: env MIRAGE_CACHE_DIR=%t mirage-opt %S/../inputs/rmsnorm_linear_small_f32.mlir -pass-pipeline='builtin.module(convert-linalg-to-mirage,mirage-superoptimize{time-budget=10},mirage-verify)' -verify-diagnostics | FileCheck %s
// An unknown chip is an error.
// RUN: not mirage-opt %s -pass-pipeline='builtin.module(mirage-superoptimize{target=sm_00})' 2>&1 | FileCheck %s --check-prefix=CHIP

// CHECK-LABEL: func.func @main
// CHECK: "mirage_kernel.graph_def"
// CHECK: mirage.reference = @main__mirage_ref0
// CHECK: func.func private @main__mirage_ref0
// CHECK-SAME: attributes {mirage.reference_function}
// CHECK: "mirage_kernel.rms_norm"
// CHECK: "mirage_kernel.matmul"

// CHIP: unknown target chip 'sm_00'
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "mirage_kernel.exp"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
