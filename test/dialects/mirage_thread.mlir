// Round trip and verification of the mirage_thread dialect: scalar elementwise chains, the bodies of
// mirage_block.thread_graph. Valid chunks are printed and reprinted; invalid ones must give exactly
// their errors.
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | mirage-opt -split-input-file | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics -mlir-print-op-generic | mirage-opt -split-input-file | FileCheck %s

// Every scalar operator of the thread level (the elementwise opset), in a post-loop thread graph.
// CHECK-LABEL: func.func @every_scalar_op(
// CHECK: %[[G:.*]] = "mirage_block.thread_graph"(%{{.*}}, %{{.*}}) ({
// CHECK-NEXT: ^bb0(%[[P:.*]]: f32, %[[Q:.*]]: f32):
// CHECK-NEXT: %[[V0:.*]] = "mirage_thread.exp"(%[[P]]) : (f32) -> f32
// CHECK-NEXT: %[[V1:.*]] = "mirage_thread.square"(%[[V0]]) : (f32) -> f32
// CHECK-NEXT: %[[V2:.*]] = "mirage_thread.sqrt"(%[[V1]])
// CHECK-NEXT: %[[V3:.*]] = "mirage_thread.rsqrt"(%[[V2]])
// CHECK-NEXT: %[[V4:.*]] = "mirage_thread.silu"(%[[V3]])
// CHECK-NEXT: %[[V5:.*]] = "mirage_thread.gelu"(%[[V4]])
// CHECK-NEXT: %[[V6:.*]] = "mirage_thread.relu"(%[[V5]])
// CHECK-NEXT: %[[V7:.*]] = "mirage_thread.neg"(%[[V6]])
// CHECK-NEXT: %[[V8:.*]] = "mirage_thread.mul_scalar"(%[[V7]]) {scalar = 5.000000e-01 : f64} : (f32) -> f32
// CHECK-NEXT: %[[V9:.*]] = "mirage_thread.add_scalar"(%[[V8]]) {scalar = 1.000000e+00 : f64} : (f32) -> f32
// CHECK-NEXT: %[[V10:.*]] = "mirage_thread.add"(%[[V9]], %[[Q]]) : (f32, f32) -> f32
// CHECK-NEXT: %[[V11:.*]] = "mirage_thread.sub"(%[[V10]], %[[Q]])
// CHECK-NEXT: %[[V12:.*]] = "mirage_thread.mul"(%[[V11]], %[[Q]])
// CHECK-NEXT: %[[V13:.*]] = "mirage_thread.div"(%[[V12]], %[[Q]])
// CHECK-NEXT: %[[V14:.*]] = "mirage_thread.pow"(%[[V13]], %[[Q]])
// CHECK-NEXT: %[[V15:.*]] = "mirage_thread.max"(%[[V14]], %[[P]])
// CHECK-NEXT: %[[V16:.*]] = "mirage_thread.cast"(%[[V15]]) : (f32) -> f16
// CHECK-NEXT: %[[V17:.*]] = "mirage_thread.cast"(%[[V16]]) : (f16) -> f32
// CHECK-NEXT: gpu.yield %[[V17]] : f32
// CHECK-NEXT: }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
// CHECK-NEXT: "mirage_block.output_saver"(%[[G]])
func.func @every_scalar_op(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      %0 = "mirage_thread.exp"(%p) : (f32) -> f32
      %1 = "mirage_thread.square"(%0) : (f32) -> f32
      %2 = "mirage_thread.sqrt"(%1) : (f32) -> f32
      %3 = "mirage_thread.rsqrt"(%2) : (f32) -> f32
      %4 = "mirage_thread.silu"(%3) : (f32) -> f32
      %5 = "mirage_thread.gelu"(%4) : (f32) -> f32
      %6 = "mirage_thread.relu"(%5) : (f32) -> f32
      %7 = "mirage_thread.neg"(%6) : (f32) -> f32
      %8 = "mirage_thread.mul_scalar"(%7) {scalar = 0.5} : (f32) -> f32
      %9 = "mirage_thread.add_scalar"(%8) {scalar = 1.0} : (f32) -> f32
      %10 = "mirage_thread.add"(%9, %q) : (f32, f32) -> f32
      %11 = "mirage_thread.sub"(%10, %q) : (f32, f32) -> f32
      %12 = "mirage_thread.mul"(%11, %q) : (f32, f32) -> f32
      %13 = "mirage_thread.div"(%12, %q) : (f32, f32) -> f32
      %14 = "mirage_thread.pow"(%13, %q) : (f32, f32) -> f32
      %15 = "mirage_thread.max"(%14, %p) : (f32, f32) -> f32
      %16 = "mirage_thread.cast"(%15) : (f32) -> f16
      %17 = "mirage_thread.cast"(%16) : (f16) -> f32
      gpu.yield %17 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

// Other float types: an f64 thread graph over f64 tiles.
// CHECK-LABEL: func.func @f64_scalars(
// CHECK: "mirage_thread.add"(%{{.*}}, %{{.*}}) : (f64, f64) -> f64
func.func @f64_scalars(%x: tensor<4x16xf64>) -> tensor<4x8xf64> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf64>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf64>) -> tensor<4x4xf64>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf64>) -> tensor<4x4xf64>
    %g = "mirage_block.thread_graph"(%a, %a) ({
    ^bb0(%p: f64, %q: f64):
      %0 = "mirage_thread.add"(%p, %q) : (f64, f64) -> f64
      gpu.yield %0 : f64
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf64>, tensor<4x4xf64>) -> tensor<4x4xf64>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf64>) -> tensor<4x8xf64>
    gpu.yield %s : tensor<4x8xf64>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf64>) -> tensor<4x8xf64>
  return %o : tensor<4x8xf64>
}

// -----

// dialect_verifier.py: thread ops only inside thread_graph.
func.func @thread_op_outside(%a: f32) -> f32 {
  // expected-error @+1 {{'mirage_thread.exp' may only appear inside 'mirage_block.thread_graph'}}
  %r = "mirage_thread.exp"(%a) : (f32) -> f32
  return %r : f32
}

// -----

// bridge.py: thread ops are not block-graph ops, block ops are not thread-graph ops, and a
// thread graph reads only its arguments.
func.func @thread_op_in_block_graph(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%c: f32):
    // expected-error @+1 {{'mirage_thread.exp' cannot appear in a block graph (expected mirage_block ops)}}
    %e = "mirage_thread.exp"(%c) : (f32) -> f32
    gpu.yield %e : f32
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}

// -----

func.func @block_op_in_thread_graph(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: tensor<4x4xf32>, %q: tensor<4x1xf32>):
      // expected-error @+1 {{'mirage_block.exp' cannot appear in a thread graph (expected mirage_thread ops)}}
      %0 = "mirage_block.exp"(%p) : (tensor<4x4xf32>) -> tensor<4x4xf32>
      gpu.yield %0 : tensor<4x4xf32>
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @scalar_from_outside(%x: tensor<4x16xf32>, %c: f32) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      // expected-error @+1 {{'mirage_thread.add' uses a value defined outside its graph}}
      %0 = "mirage_thread.add"(%p, %c) : (f32, f32) -> f32
      gpu.yield %0 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

// IRDL: thread ops take float scalars and their attributes.
func.func @tensor_in_thread_op(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      // expected-error @+1 {{'tensor<4x4xf32>' does not satisfy the constraint}}
      %0 = "mirage_thread.exp"(%a) : (tensor<4x4xf32>) -> tensor<4x4xf32>
      gpu.yield %p : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @missing_scalar(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      // expected-error @+1 {{'mirage_thread.mul_scalar' op attribute "scalar" is expected but not provided}}
      %0 = "mirage_thread.mul_scalar"(%p) : (f32) -> f32
      gpu.yield %0 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

// graph_verify.py: the thread_graph op and its body.
func.func @two_scalars_yielded(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    // expected-error @+1 {{thread_graph needs a body yielding one scalar and has one result}}
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      %0 = "mirage_thread.add"(%p, %q) : (f32, f32) -> f32
      gpu.yield %0, %p : f32, f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @operands_do_not_broadcast(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %t2 = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = -1} : (tensor<4x16xf32>) -> tensor<4x8xf32>
    %t3 = "mirage_block.accum_sum"(%t2) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    // expected-error @+1 {{thread_graph operands do not broadcast: operand dims do not broadcast: 4 vs 8}}
    %g = "mirage_block.thread_graph"(%a, %t3) ({
    ^bb0(%p: f32, %q: f32):
      %0 = "mirage_thread.add"(%p, %q) : (f32, f32) -> f32
      gpu.yield %0 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @no_operands(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    // expected-error @+1 {{thread_graph needs at least one operand}}
    %g = "mirage_block.thread_graph"() ({
    ^bb0(%c: f32):
      %0 = "mirage_thread.add"(%c, %c) : (f32, f32) -> f32
      gpu.yield %0 : f32
    }) {operandSegmentSizes = array<i32: 0, 0, 0, 0, 0, 0, 0, 0>} : () -> tensor<4x4xf32>
    // a thread graph without operands does not run after the loop either
    // expected-error @+1 {{output_saver must follow a for-loop accumulator}}
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @argument_types(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    // expected-error @+1 {{thread_graph body arguments must be scalars of its operands' element types}}
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f16, %q: f16):
      %0 = "mirage_thread.add"(%p, %q) : (f16, f16) -> f16
      %1 = "mirage_thread.cast"(%0) : (f16) -> f32
      gpu.yield %1 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @result_type(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    // expected-error @+1 {{thread_graph result tensor<4x1xf32> does not match its operands and body}}
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      %0 = "mirage_thread.add"(%p, %q) : (f32, f32) -> f32
      gpu.yield %0 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x1xf32>
    %g2 = "mirage_block.mul"(%g, %a) : (tensor<4x1xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g2) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @mixed_scalar_types(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    %g = "mirage_block.thread_graph"(%a, %r) ({
    ^bb0(%p: f32, %q: f32):
      %h = "mirage_thread.cast"(%p) : (f32) -> f16
      // expected-error @+1 {{'add' mixes element types ['f16', 'f32']; convert with 'cast'}}
      %0 = "mirage_thread.add"(%h, %q) : (f16, f32) -> f32
      gpu.yield %0 : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x4xf32>, tensor<4x1xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%g) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}
