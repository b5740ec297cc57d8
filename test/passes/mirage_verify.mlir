// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-verify)' -verify-diagnostics | FileCheck %s
// RUN: mirage-opt %S/../inputs/dynamic/rmsnorm_linear_dyn_small_f32.mlir -pass-pipeline='builtin.module(mirage-specialize-dims{sizes=1,4,8 remarks=false},convert-linalg-to-mirage,mirage-verify)' | FileCheck %s --check-prefix=DISPATCH

// A dispatch over specializations (mirage-specialize-dims) against the function as given, on the
// interpreter at sizes between the compiled ones.
// DISPATCH: "mirage.dispatch"(%arg0, %arg1) {callees = [@main__n1, @main__n4, @main__n8]
// DISPATCH-SAME: mirage.verified = "float at sizes 3, 5, 8 (between the compiled 1, 4, 8, each verified at its own size): max relative error

// Mirage's RMSNorm+Linear plan (grid over W's columns, a for-loop over K, an rms accumulator beside
// the matmul's) against the rms_norm + matmul it replaced: accepted, the verdict recorded.
// CHECK-LABEL: func.func @main
// CHECK: "mirage_kernel.graph_def"
// CHECK: mirage.reference = @main__mirage_ref0, mirage.verified = "finite-field: 4 trials, false-positive bound {{[0-9.e-]+}}; float max relative error
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

// -----

// Online softmax (partial maxes and rescaled sums over a for-loop, then exp(x - max) / sum) against
// the stable softmax torch-mlir writes: max only stabilises both, so the finite fields decide it.
// CHECK-LABEL: func.func @online_softmax
// CHECK: "mirage_kernel.graph_def"
// CHECK: mirage.reference = @softmax_ref, mirage.verified = "finite-field: 4 trials
func.func @online_softmax(%arg0: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %0:2 = "mirage_kernel.graph_def"(%arg0) ({
  ^bb0(%arg1: tensor<4x64xf32>):
    %4 = "mirage_block.input_iterator"(%arg1) {fmap = 1 : i64, imap = array<i64: 0, -1, -1>} : (tensor<4x64xf32>) -> tensor<1x16xf32>
    %5 = "mirage_block.reduce_max"(%4) {dim = 1 : i64} : (tensor<1x16xf32>) -> tensor<1x1xf32>
    %6 = "mirage_block.sub"(%4, %5) : (tensor<1x16xf32>, tensor<1x1xf32>) -> tensor<1x16xf32>
    %7 = "mirage_block.exp"(%6) : (tensor<1x16xf32>) -> tensor<1x16xf32>
    %8 = "mirage_block.reduce_sum"(%7) {dim = 1 : i64} : (tensor<1x16xf32>) -> tensor<1x1xf32>
    %9 = "mirage_block.accum_max"(%5) : (tensor<1x1xf32>) -> tensor<1x1xf32>
    %10 = "mirage_block.accum_rescaled_sum"(%8, %5) : (tensor<1x1xf32>, tensor<1x1xf32>) -> tensor<1x1xf32>
    %11 = "mirage_block.output_saver"(%9) {omap = array<i64: 0, -1, -1>} : (tensor<1x1xf32>) -> tensor<4x1xf32>
    %12 = "mirage_block.output_saver"(%10) {omap = array<i64: 0, -1, -1>} : (tensor<1x1xf32>) -> tensor<4x1xf32>
    gpu.yield %11, %12 : tensor<4x1xf32>, tensor<4x1xf32>
  }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 4, 1, 1>, mirage.reference = @softmax_ref, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>) -> (tensor<4x1xf32>, tensor<4x1xf32>)
  %1 = "mirage_kernel.sub"(%arg0, %0#0) {mirage.reference = @softmax_ref} : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %2 = "mirage_kernel.exp"(%1) {mirage.reference = @softmax_ref} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %3 = "mirage_kernel.div"(%2, %0#1) {mirage.reference = @softmax_ref} : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %3 : tensor<4x64xf32>
}
func.func private @softmax_ref(%x: tensor<4x64xf32>) -> tensor<4x64xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.reduce_max"(%x) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  %1 = "mirage_kernel.sub"(%x, %0) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %2 = "mirage_kernel.exp"(%1) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %3 = "mirage_kernel.reduce_sum"(%2) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  %4 = "mirage_kernel.div"(%2, %3) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  return %4 : tensor<4x64xf32>
}

// -----

// relu as max(x, 0): the max's value is the output, which the finite fields cannot decide; the float
// check alone agrees, which is not a verification (accept-float-only=true accepts it).
func.func @relu_as_max(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{mirage-verify: the group tagged @relu_ref cannot be verified: the value of a max reaches output #0 of the candidate}}
  %0 = "mirage_kernel.mul_scalar"(%x) {scalar = 0.0 : f64, mirage.reference = @relu_ref} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "mirage_kernel.max"(%x, %0) {mirage.reference = @relu_ref} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}
func.func private @relu_ref(%x: tensor<4x8xf32>) -> tensor<4x8xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.relu"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}

// -----

// exp(x) / sum(exp(x)) in place of the stable softmax: equal over the finite fields and on small
// inputs, but it overflows where the original stays finite.
func.func @unstable(%x: tensor<4x64xf16>) -> tensor<4x64xf16> {
  // expected-error @+1 {{mirage-verify: output #0 differs from the reference @unstable_ref: output #0 agrees over the finite fields but overflows in floating point}}
  %0 = "mirage_kernel.exp"(%x) {mirage.reference = @unstable_ref} : (tensor<4x64xf16>) -> tensor<4x64xf16>
  %1 = "mirage_kernel.reduce_sum"(%0) {dim = 1 : i64, mirage.reference = @unstable_ref} : (tensor<4x64xf16>) -> tensor<4x1xf16>
  %2 = "mirage_kernel.div"(%0, %1) {mirage.reference = @unstable_ref} : (tensor<4x64xf16>, tensor<4x1xf16>) -> tensor<4x64xf16>
  return %2 : tensor<4x64xf16>
}
func.func private @unstable_ref(%x: tensor<4x64xf16>) -> tensor<4x64xf16> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.reduce_max"(%x) {dim = 1 : i64} : (tensor<4x64xf16>) -> tensor<4x1xf16>
  %1 = "mirage_kernel.sub"(%x, %0) : (tensor<4x64xf16>, tensor<4x1xf16>) -> tensor<4x64xf16>
  %2 = "mirage_kernel.exp"(%1) : (tensor<4x64xf16>) -> tensor<4x64xf16>
  %3 = "mirage_kernel.reduce_sum"(%2) {dim = 1 : i64} : (tensor<4x64xf16>) -> tensor<4x1xf16>
  %4 = "mirage_kernel.div"(%2, %3) : (tensor<4x64xf16>, tensor<4x1xf16>) -> tensor<4x64xf16>
  return %4 : tensor<4x64xf16>
}

// -----

// A specialization that computes something else than the function as given (sqrt for exp).
func.func private @f__n4(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "mirage_kernel.sqrt"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
func.func private @f__mirage_dynamic(%x: tensor<?x8xf32>) -> tensor<?x8xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.exp"(%x) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{mirage-verify: output #0 of the dispatch differs from @f__mirage_dynamic at size 3 (non-finite values, shape [3, 8])}}
  %0 = "mirage.dispatch"(%x) {callees = [@f__n4], sizes = array<i64: 4>, mirage.reference = @f__mirage_dynamic, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>} : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
