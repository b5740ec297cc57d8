// --split-input-file: chunks are processed independently, outputs are joined with `// -----`, and
// diagnostics carry the line numbers of the whole file. A failing chunk fails the run (exit 1)
// but the other chunks are still printed.
// RUN: not mirage-opt %s -split-input-file 2>%t.err | FileCheck %s
// RUN: FileCheck %s --check-prefix=ERR < %t.err
// Without splitting, the whole file is one module and its first error stops it.
// RUN: not mirage-opt %s 2>&1 | FileCheck %s --check-prefix=WHOLE

// CHECK: module {
// CHECK-NEXT: func.func @first()
func.func @first() {
  return
}

// CHECK: // -----
// CHECK-NEXT: module {
// CHECK-NEXT: func.func @second(%arg0: tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT: "mirage_kernel.exp"(%arg0)
// -----
func.func @second(%a: tensor<4xf32>) -> tensor<4xf32> {
  %e = "mirage_kernel.exp"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %e : tensor<4xf32>
}

// The failing chunk prints nothing between its markers.
// CHECK: // -----
// CHECK-EMPTY:
// CHECK-NEXT: // -----
// -----
func.func @third() {
  // ERR: split-input-file.mlir:[[@LINE+3]]:8: error: op expects exactly 1 operands, but got 0
  // ERR-NEXT: {{^}}  %e = "mirage_kernel.exp"() : () -> tensor<4xf32>
  // ERR-NEXT: {{^}}       ^
  %e = "mirage_kernel.exp"() : () -> tensor<4xf32>
  return
}

// CHECK-NEXT: module {
// CHECK-NEXT: func.func @fourth()
// -----
func.func @fourth() {
  return
}

// Markers with more dashes are not markers (MLIR's rule): this stays in the fourth chunk.
// ------
// CHECK-NOT: // -----
// CHECK-NOT: module

// WHOLE: split-input-file.mlir:[[@LINE-16]]:8: error: op expects exactly 1 operands, but got 0
