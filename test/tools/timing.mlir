// --mlir-timing reports the time of every pass, mirage passes included, on stderr.
// RUN: mirage-opt %s -p 'builtin.module(func.func(canonicalize),convert-linalg-to-mirage)' --mlir-timing -o %t 2>&1 | FileCheck %s
// RUN: FileCheck %s --check-prefix=OUT < %t

// CHECK: ... Execution time report ...
// CHECK: Total Execution Time:
// CHECK: 'func.func' Pipeline
// CHECK-NEXT: Canonicalizer
// CHECK: ConvertLinalgToMirage
// CHECK: Total

// OUT: "mirage_kernel.exp"
#map = affine_map<(d0) -> (d0)>
func.func @exp(%a: tensor<8xf32>) -> tensor<8xf32> {
  %init = tensor.empty() : tensor<8xf32>
  %r = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel"]} ins(%a : tensor<8xf32>) outs(%init : tensor<8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %x = math.exp %in : f32
    linalg.yield %x : f32
  } -> tensor<8xf32>
  return %r : tensor<8xf32>
}
