// Bad input gives `file:line:col: error: message`, the source line and a caret, and exit code 1.
// RUN: rm -f %t
// RUN: not mirage-opt %s -split-input-file -o %t 2>&1 | FileCheck %s
// RUN: not mirage-opt %s.missing 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: bad-input.mlir.missing: error: cannot open input file: No such file or directory
// RUN: not mirage-compile %s.missing -o %t.dir 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not mirage-opt %S 2>&1 | FileCheck %s --check-prefix=DIRECTORY
// DIRECTORY: error: cannot open input file: Is a directory
// RUN: not mirage-opt %s --no-such-flag 2>&1 | FileCheck %s --check-prefix=FLAG
// FLAG: mirage-opt: error: unrecognized arguments: --no-such-flag
// The output file is not written when something failed.
// RUN: not test -e %t
// RUN: not test -e %t.dir

// CHECK: bad-input.mlir:[[@LINE+3]]:14: error: expected non-function type
// CHECK-NEXT: {{^}}func.func @f( {
// CHECK-NEXT: {{^}}             ^
func.func @f( {

// -----

// CHECK: bad-input.mlir:[[@LINE+4]]:8: error: unregistered operation 'mirage_kernel.bogus' found in dialect ('mirage_kernel') that does not allow unknown operations
// CHECK-NEXT: {{^}}  %r = "mirage_kernel.bogus"(%a) : (tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT: {{^}}       ^
func.func @unknown_op(%a: tensor<4xf32>) -> tensor<4xf32> {
  %r = "mirage_kernel.bogus"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

// CHECK: bad-input.mlir:[[@LINE+2]]:8: error: expected base attribute 'builtin.dense_array' but got 'builtin.integer'
func.func @attribute_kind(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    gpu.yield %bx : tensor<4x16xf32>
  }) {grid_dim = 1, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}

// -----

// CHECK: bad-input.mlir:[[@LINE+2]]:22: error: expected attribute value
func.func @g() {
  %c = arith.constant : f32
  return
}

// -----

// CHECK: bad-input.mlir:[[@LINE+1]]:1: error: custom op 'not_mlir' is unknown
not_mlir at all
