// --mlir-print-ir-after-all prints the IR to stderr after every pass, mirage passes included, with
// MLIR's headers; --mlir-print-ir-before-all before every pass.
// RUN: mirage-opt %s -p 'builtin.module(func.func(canonicalize),convert-linalg-to-mirage,cse)' --mlir-print-ir-after-all -o %t 2>&1 | FileCheck %s
// RUN: mirage-opt %s -p 'builtin.module(convert-linalg-to-mirage)' -mlir-print-ir-before-all -o %t 2>&1 | FileCheck %s --check-prefix=BEFORE

// CHECK: // -----// IR Dump After Canonicalizer (canonicalize) //----- //
// CHECK-NEXT: func.func @relu
// CHECK: linalg.generic
// CHECK: // -----// IR Dump After ConvertLinalgToMirage (convert-linalg-to-mirage) //----- //
// CHECK-NEXT: module {
// CHECK: "mirage_kernel.relu"
// CHECK: // -----// IR Dump After CSE (cse) //----- //
// CHECK: "mirage_kernel.relu"

// BEFORE: // -----// IR Dump Before ConvertLinalgToMirage (convert-linalg-to-mirage) //----- //
// BEFORE: linalg.generic
// BEFORE-NOT: mirage_kernel
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @relu(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %init = tensor.empty() : tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<4x8xf32>) outs(%init : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %x = arith.maximumf %in, %zero : f32
    linalg.yield %x : f32
  } -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}
