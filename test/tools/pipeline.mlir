// --pass-pipeline (-p) mixes mirage passes, written by name with options in braces, and upstream
// passes and nested pipelines; builtin.module(...) around it is optional.
// RUN: mirage-opt %s --pass-pipeline='builtin.module(func.func(canonicalize,cse),convert-linalg-to-mirage,canonicalize)' | FileCheck %s
// RUN: mirage-opt %s -p 'func.func(canonicalize), convert-linalg-to-mirage' | FileCheck %s
// RUN: mirage-opt %s -pass-pipeline=builtin.module(convert-linalg-to-mirage{}) | FileCheck %s
// Upstream passes alone, the pipeline applied to its own output, and an empty pipeline.
// RUN: mirage-opt %s -p 'builtin.module(canonicalize,cse)' | FileCheck %s --check-prefix=UPSTREAM
// RUN: mirage-opt %s -p 'builtin.module(convert-linalg-to-mirage)' | mirage-opt -p 'builtin.module(convert-linalg-to-mirage,cse)' | FileCheck %s
// RUN: mirage-opt %s -p 'builtin.module()' | FileCheck %s --check-prefix=UPSTREAM

// CHECK-LABEL: func.func @mm_exp(
// CHECK-SAME: %[[A:.*]]: tensor<4x8xf32>, %[[B:.*]]: tensor<8x16xf32>)
// CHECK-NEXT: %[[M:.*]] = "mirage_kernel.matmul"(%[[A]], %[[B]]) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[E:.*]] = "mirage_kernel.exp"(%[[M]]) : (tensor<4x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: return %[[E]]
// UPSTREAM-LABEL: func.func @mm_exp(
// UPSTREAM: linalg.matmul
// UPSTREAM: math.exp
// UPSTREAM-NOT: mirage_kernel
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @mm_exp(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %init = tensor.empty() : tensor<4x16xf32>
  %fill = linalg.fill ins(%zero : f32) outs(%init : tensor<4x16xf32>) -> tensor<4x16xf32>
  %mm = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x16xf32>) outs(%fill : tensor<4x16xf32>) -> tensor<4x16xf32>
  %e = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%mm : tensor<4x16xf32>) outs(%init : tensor<4x16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %x = math.exp %in : f32
    linalg.yield %x : f32
  } -> tensor<4x16xf32>
  return %e : tensor<4x16xf32>
}
