// mirage-run runs a function with the NumPy interpreter on seeded random inputs and prints one line
// per output: index, shape, dtype and summary numbers. Errors are diagnostics with exit code 1.
// RUN: mirage-run %s | FileCheck %s
// RUN: mirage-run %s --entry two_outputs --seed 3 | FileCheck %s --check-prefix=TWO
// RUN: mirage-run %s --entry @dynamic --dims arg0.0=3 | FileCheck %s --check-prefix=DYN
// RUN: mirage-run %s --entry dynamic | FileCheck %s --check-prefix=DYNDEFAULT
// --save stores inputs and outputs; --inputs reruns on the saved inputs and gives the same outputs.
// RUN: mirage-run %s --save %t.npz > %t.both
// RUN: mirage-run %s --inputs %t.npz >> %t.both
// RUN: FileCheck %s --check-prefix=SAVE < %t.both
// SAVE: (seed 0)
// SAVE-NEXT: output 0: [[STATS:.*]]
// SAVE-NEXT: @main: 2 input(s) (inputs from {{.*}}.npz), 1 output(s)
// SAVE-NEXT: output 0: [[STATS]]
// RUN: not mirage-run %s --entry nope 2>&1 | FileCheck %s --check-prefix=ENTRY
// RUN: not mirage-run %s --entry unsupported 2>&1 | FileCheck %s --check-prefix=NOHANDLER
// RUN: not mirage-run %s.missing 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not mirage-run %s --dims x 2>&1 | FileCheck %s --check-prefix=DIMS

// CHECK: @main: 2 input(s) (seed 0), 1 output(s)
// CHECK-NEXT: output 0: shape=[4, 16] dtype=float32 min={{[-0-9.e+]+}} max={{[-0-9.e+]+}} mean={{[-0-9.e+]+}} abs_sum={{[0-9.e+]+}}
// CHECK-NOT: output 1
func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %m = "mirage_kernel.matmul"(%x, %w) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  %e = "mirage_kernel.exp"(%m) : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %e : tensor<4x16xf32>
}

// TWO: @two_outputs: 1 input(s) (seed 3), 2 output(s)
// TWO-NEXT: output 0: shape=[4, 8] dtype=float16 min=
// TWO-NEXT: output 1: shape=[4, 1] dtype=float16 min=
func.func @two_outputs(%x: tensor<4x8xf16>) -> (tensor<4x8xf16>, tensor<4x1xf16>) {
  %s = "mirage_kernel.square"(%x) : (tensor<4x8xf16>) -> tensor<4x8xf16>
  %r = "mirage_kernel.reduce_sum"(%s) {dim = 1} : (tensor<4x8xf16>) -> tensor<4x1xf16>
  return %s, %r : tensor<4x8xf16>, tensor<4x1xf16>
}

// DYN: output 0: shape=[3, 8] dtype=float32
// DYNDEFAULT: output 0: shape=[8, 8] dtype=float32
func.func @dynamic(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %e = "mirage_kernel.exp"(%x) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %e : tensor<?x8xf32>
}

// NOHANDLER: mirage-run.mlir:[[@LINE+2]]:8: error: {{.+}}math.cbrt
func.func @unsupported(%x: tensor<4xf32>) -> tensor<4xf32> {
  %e = math.cbrt %x : tensor<4xf32>
  return %e : tensor<4xf32>
}

// ENTRY: mirage-run.mlir: error: no function '@nope' to run (functions: @main, @two_outputs, @dynamic, @unsupported)
// MISSING: mirage-run.mlir.missing: error: cannot open input file: No such file or directory
// DIMS: mirage-run: error: bad --dims entry 'x' (expected argI.J=SIZE or ?=SIZE)
