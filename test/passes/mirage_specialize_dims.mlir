// RUN: mirage-opt %S/../inputs/dynamic/rmsnorm_linear_dyn_small_f32.mlir -pass-pipeline='builtin.module(mirage-specialize-dims{sizes=1,8 remarks=false})' | FileCheck %s
// RUN: mirage-opt %S/../inputs/dynamic/rmsnorm_linear_dyn_small_f32.mlir -pass-pipeline='builtin.module(mirage-specialize-dims{sizes=1,8})' -o /dev/null 2>&1 | FileCheck %s --check-prefix=REMARK
// RUN: mirage-opt %s -split-input-file -verify-diagnostics -pass-pipeline='builtin.module(mirage-specialize-dims{sizes=1,4 remarks=false})' -o /dev/null
// RUN: not mirage-opt %s -pass-pipeline='builtin.module(mirage-specialize-dims{sizes=8,1})' -o /dev/null 2>&1 | FileCheck %s --check-prefix=SIZES

// torch-mlir's dynamic batch: one static copy per size (tensor.dim folded, the broadcast check
// decided and removed, tensor.empty static), and @main a dispatch over them.
// CHECK: func.func private @main__n1(%arg0: tensor<1x64xf32>, %arg1: tensor<64x128xf32>) -> tensor<1x128xf32> attributes {mirage.specialization = {inputs = array<i64: 0, -1>, of = @main, outputs = array<i64: 0>, size = 1 : i64}}
// CHECK-NOT: tensor.dim
// CHECK-NOT: cf.assert
// CHECK: tensor.empty() : tensor<1x64xf32>
// CHECK: linalg.matmul ins(%{{.*}}, %arg1 : tensor<1x64xf32>, tensor<64x128xf32>) outs(%{{.*}} : tensor<1x128xf32>)
// CHECK: func.func private @main__n8(%arg0: tensor<8x64xf32>, %arg1: tensor<64x128xf32>) -> tensor<8x128xf32>
// CHECK: func.func @main(%arg0: tensor<?x64xf32>, %arg1: tensor<64x128xf32>) -> tensor<?x128xf32>
// CHECK-NEXT: %[[R:.*]] = "mirage.dispatch"(%arg0, %arg1) {callees = [@main__n1, @main__n8]
// CHECK-SAME: sizes = array<i64: 1, 8>
// CHECK-NEXT: return %[[R]] : tensor<?x128xf32>

// REMARK: rmsnorm_linear_dyn_small_f32.mlir:5:3: remark: mirage-specialize-dims: @main compiled at sizes 1, 8 of its dynamic dims (rows along them are computed independently: a call of size n runs the smallest size >= n, on n rows)

// SIZES: error: mirage-specialize-dims: sizes must be increasing positive integers, got '8,1'

#map = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d1)>
// A sum over the dynamic dim mixes rows: padding would change it.
func.func @column_sum(%x: tensor<?x16xf32>) -> tensor<16xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<16xf32>
  %z = linalg.fill ins(%cst : f32) outs(%e : tensor<16xf32>) -> tensor<16xf32>
  // expected-error @+1 {{mirage-specialize-dims: cannot specialize @column_sum: it reduces over the dynamic dim}}
  %s = linalg.generic {indexing_maps = [#map, #row], iterator_types = ["reduction", "parallel"]} ins(%x : tensor<?x16xf32>) outs(%z : tensor<16xf32>) {
  ^bb0(%in: f32, %out: f32):
    %a = arith.addf %in, %out : f32
    linalg.yield %a : f32
  } -> tensor<16xf32>
  return %s : tensor<16xf32>
}

// -----

// A check that fails at one of the sizes (the program needs at least 2 rows).
func.func @at_least_two(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %c2 = arith.constant 2 : index
  %d = tensor.dim %x, %c0 : tensor<?x16xf32>
  %ok = arith.cmpi eq, %d, %c2 : index
  // expected-error @+1 {{mirage-specialize-dims: at size 1 this assertion fails: needs two rows}}
  cf.assert %ok, "needs two rows"
  return %x : tensor<?x16xf32>
}

// -----

// A transpose moves the dynamic dim where the analysis cannot follow it.
func.func @transposed(%x: tensor<?x16xf32>, %y: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %d = tensor.dim %x, %c0 : tensor<?x16xf32>
  %e = tensor.empty(%d) : tensor<?x16xf32>
  // expected-error @+1 {{mirage-specialize-dims: cannot specialize @transposed: 'linalg.transpose' is not known to keep rows along the dynamic dim independent}}
  %t = linalg.transpose ins(%x : tensor<?x16xf32>) outs(%e : tensor<?x16xf32>) permutation = [0, 1]
  return %t : tensor<?x16xf32>
}

// -----

// The compiled kernels count the rows of a leading dim: another dynamic dim is refused.
// expected-error @+1 {{mirage-specialize-dims: cannot specialize @inner: tensor<16x?xf32> has a dynamic dim other than a leading one (of two or more)}}
func.func @inner(%x: tensor<16x?xf32>) -> tensor<16x?xf32> {
  return %x : tensor<16x?xf32>
}

// -----

// A specialization's name is taken already.
func.func private @taken__n1(%x: tensor<1x16xf32>) -> tensor<1x16xf32> {
  return %x : tensor<1x16xf32>
}
// expected-error @+1 {{mirage-specialize-dims: cannot specialize @taken: @taken__n1 exists already}}
func.func @taken(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  return %x : tensor<?x16xf32>
}
