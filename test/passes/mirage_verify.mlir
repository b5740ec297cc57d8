// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-verify)' -verify-diagnostics | FileCheck %s

// Mirage's RMSNorm+Linear plan (grid over W's columns, a for-loop over K, an rms accumulator beside
// the matmul's) against the rms_norm + matmul it replaced: accepted, the IR is unchanged.
// CHECK-LABEL: func.func @main
// CHECK: "mirage_kernel.graph_def"
// CHECK: mirage.reference = @main__mirage_ref0
func.func @main(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>) -> tensor<4x128xf32> {
  %0 = "mirage_kernel.graph_def"(%x, %w) ({
  ^bb0(%a: tensor<4x64xf32>, %b: tensor<64x128xf32>):
    %1 = "mirage_block.input_iterator"(%a) {fmap = 1 : i64, imap = array<i64: -1, -1, -1>} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %2 = "mirage_block.input_iterator"(%b) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<64x128xf32>) -> tensor<16x64xf32>
    %3 = "mirage_block.matmul"(%1, %2) : (tensor<4x16xf32>, tensor<16x64xf32>) -> tensor<4x64xf32>
    %4 = "mirage_block.accum_sum"(%3) : (tensor<4x64xf32>) -> tensor<4x64xf32>
    %5 = "mirage_block.accum_rms"(%1) {reduce_dim = 1 : i64, eps = 1.0e-06 : f64} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %6 = "mirage_block.div"(%4, %5) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
    %7 = "mirage_block.output_saver"(%6) {omap = array<i64: 1, -1, -1>} : (tensor<4x64xf32>) -> tensor<4x128xf32>
    gpu.yield %7 : tensor<4x128xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, mirage.reference = @main__mirage_ref0, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  return %0 : tensor<4x128xf32>
}
func.func private @main__mirage_ref0(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>) -> tensor<4x128xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.rms_norm"(%x) {eps = 1.0e-06 : f64} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %1 = "mirage_kernel.matmul"(%0, %w) : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  return %1 : tensor<4x128xf32>
}

// -----

// A mutant: the rms accumulator became a mean accumulator (shapes fit, values do not).
func.func @main(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>) -> tensor<4x128xf32> {
  // expected-error @+1 {{mirage-verify: output #0 differs from the reference @main__mirage_ref0}}
  %0 = "mirage_kernel.graph_def"(%x, %w) ({
  ^bb0(%a: tensor<4x64xf32>, %b: tensor<64x128xf32>):
    %1 = "mirage_block.input_iterator"(%a) {fmap = 1 : i64, imap = array<i64: -1, -1, -1>} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %2 = "mirage_block.input_iterator"(%b) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<64x128xf32>) -> tensor<16x64xf32>
    %3 = "mirage_block.matmul"(%1, %2) : (tensor<4x16xf32>, tensor<16x64xf32>) -> tensor<4x64xf32>
    %4 = "mirage_block.accum_sum"(%3) : (tensor<4x64xf32>) -> tensor<4x64xf32>
    %5 = "mirage_block.accum_mean"(%1) {reduce_dim = 1 : i64} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %6 = "mirage_block.div"(%4, %5) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
    %7 = "mirage_block.output_saver"(%6) {omap = array<i64: 1, -1, -1>} : (tensor<4x64xf32>) -> tensor<4x128xf32>
    gpu.yield %7 : tensor<4x128xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, mirage.reference = @main__mirage_ref0, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  return %0 : tensor<4x128xf32>
}
func.func private @main__mirage_ref0(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>) -> tensor<4x128xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.rms_norm"(%x) {eps = 1.0e-06 : f64} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %1 = "mirage_kernel.matmul"(%0, %w) : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  return %1 : tensor<4x128xf32>
}

// -----

// The reference must exist.
func.func @main(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{mirage-verify: no reference function @nowhere}}
  %0 = "mirage_kernel.exp"(%x) {mirage.reference = @nowhere} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  return %0 : tensor<4x64xf32>
}

// -----

// Ops without the attribute are not checked; an exact copy of the reference is accepted.
// CHECK-LABEL: func.func @copy
func.func @copy(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %0 = "mirage_kernel.exp"(%x) {mirage.reference = @copy_ref} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %1 = "mirage_kernel.neg"(%0) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  return %1 : tensor<4x64xf32>
}
func.func private @copy_ref(%x: tensor<4x64xf32>) -> tensor<4x64xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.exp"(%x) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  return %0 : tensor<4x64xf32>
}
