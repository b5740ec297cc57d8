// RUN: env MIRAGE_CACHE_DIR=%t mirage-opt %S/../inputs/rmsnorm_linear_small_f32.mlir -pass-pipeline='builtin.module(convert-linalg-to-mirage,mirage-superoptimize{time-budget=10})' | FileCheck %s
// The result keeps the original ops in a reference function and names it; mirage-verify accepts it.
// RUN: env MIRAGE_CACHE_DIR=%t mirage-opt %S/../inputs/rmsnorm_linear_small_f32.mlir -pass-pipeline='builtin.module(convert-linalg-to-mirage,mirage-superoptimize{time-budget=10 remarks=false},mirage-verify)' -verify-diagnostics | FileCheck %s
// One remark per group: what it became, then (run again) that it came from the cache.
// RUN: rm -rf %t.remarks && env MIRAGE_CACHE_DIR=%t.remarks mirage-opt %s -pass-pipeline='builtin.module(mirage-superoptimize{time-budget=5})' -o /dev/null 2>&1 | FileCheck %s --check-prefix=REMARK
// RUN: env MIRAGE_CACHE_DIR=%t.remarks mirage-opt %s -pass-pipeline='builtin.module(mirage-superoptimize{time-budget=5})' -o /dev/null 2>&1 | FileCheck %s --check-prefix=CACHED
// RUN: env MIRAGE_CACHE_DIR=%t.remarks mirage-opt %s -pass-pipeline='builtin.module(mirage-superoptimize{time-budget=5 remarks=false})' -o /dev/null 2>&1 | FileCheck %s --check-prefix=QUIET --allow-empty
// An op between two mirage ops that reads the first and feeds the second splits them into two groups,
// each replaced before its first reader (one group would be replaced after the second: invalid IR).
// RUN: env MIRAGE_CACHE_DIR=%t.remarks mirage-opt %s -pass-pipeline='builtin.module(mirage-superoptimize{time-budget=5 remarks=false})' | FileCheck %s --check-prefix=SPLIT
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
// REMARK: mirage_superoptimize.mlir:[[@LINE+4]]:8: remark: mirage-superoptimize: 1 op -> 1 kernel, estimate {{.*}} us, verified over finite fields (bound {{.*}})
// CACHED: mirage_superoptimize.mlir:[[@LINE+3]]:8: remark: mirage-superoptimize: 1 op -> 1 kernel, {{.*}} from the cache
// QUIET-NOT: remark
func.func @f(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "mirage_kernel.exp"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// SPLIT-LABEL: func.func @interleaved
// SPLIT: %[[A:.*]] = "mirage_kernel.graph_def"(%arg0)
// SPLIT: mirage.reference = @interleaved__mirage_ref0
// SPLIT: linalg.generic {{.*}} ins(%[[A]] : tensor<4x64xf32>)
// SPLIT: "mirage_kernel.graph_def"
// SPLIT: mirage.reference = @interleaved__mirage_ref1
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @interleaved(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %two = arith.constant 2.000000e+00 : f32
  %e = tensor.empty() : tensor<4x64xf32>
  %a = "mirage_kernel.exp"(%x) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %b = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.divf %two, %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %c = "mirage_kernel.mul"(%b, %a) : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
  return %c : tensor<4x64xf32>
}
