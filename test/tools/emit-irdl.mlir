// --emit-irdl prints the mirage dialects as IRDL that upstream mlir-opt loads with --irdl-file=: it
// then parses and prints mirage IR, and its own --verify-diagnostics agrees with ours on the errors
// IRDL can express (whole-file line numbers in split chunks included).
// REQUIRES: mlir-opt
// RUN: mirage-opt --emit-irdl > %t.irdl
// RUN: %mlir_opt --irdl-file=%t.irdl %s -split-input-file -verify-diagnostics | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @rmsnorm_linear(
// CHECK: "mirage_kernel.graph_def"
// CHECK: "mirage_block.accum_rms"
// CHECK: gpu.yield
func.func @rmsnorm_linear(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>) -> tensor<4x128xf32> {
  %o = "mirage_kernel.graph_def"(%x, %w) ({
  ^bb0(%bx: tensor<4x64xf32>, %bw: tensor<64x128xf32>):
    %xt = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %wt = "mirage_block.input_iterator"(%bw) {imap = array<i64: 1, -1, -1>, fmap = 0} : (tensor<64x128xf32>) -> tensor<16x32xf32>
    %m = "mirage_block.matmul"(%xt, %wt) : (tensor<4x16xf32>, tensor<16x32xf32>) -> tensor<4x32xf32>
    %acc = "mirage_block.accum_sum"(%m) : (tensor<4x32xf32>) -> tensor<4x32xf32>
    %r = "mirage_block.accum_rms"(%xt) {reduce_dim = 1, eps = 1.0e-6} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %d = "mirage_block.div"(%acc, %r) : (tensor<4x32xf32>, tensor<4x1xf32>) -> tensor<4x32xf32>
    %s = "mirage_block.output_saver"(%d) {omap = array<i64: 1, -1, -1>} : (tensor<4x32xf32>) -> tensor<4x128xf32>
    gpu.yield %s : tensor<4x128xf32>
  }) {grid_dim = array<i64: 4, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  return %o : tensor<4x128xf32>
}

// -----

func.func @missing_attribute(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {
  // expected-error @+1 {{'mirage_kernel.reduce_sum' op attribute "dim" is expected but not provided}}
  %r = "mirage_kernel.reduce_sum"(%a) : (tensor<4x8xf32>) -> tensor<4x1xf32>
  return %r : tensor<4x1xf32>
}

// -----

func.func @operand_count(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %r = "mirage_kernel.add"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32> // expected-error {{expects exactly 2 operands, but got 1}}
  return %r : tensor<4x8xf32>
}

// -----

func.func @thread_scalar(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error-re @below {{'tensor<4x8xf32>' does not {{[a-z]+}} the constraint}}
  %r = "mirage_thread.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @segments(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    gpu.yield %bx : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  // expected-error @-4 {{'operandSegmentSizes' attribute is expected but not provided}}
  return %o : tensor<4x8xf32>
}
