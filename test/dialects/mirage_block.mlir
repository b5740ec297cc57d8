// Round trip and verification of the mirage_block dialect: block graphs, the bodies of
// mirage_kernel.graph_def (input iterators, loop-body operators, for-loop accumulators, thread graphs,
// output savers). Valid chunks are printed and reprinted; invalid ones must give exactly their errors.
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | mirage-opt -split-input-file | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics -mlir-print-op-generic | mirage-opt -split-input-file | FileCheck %s

// Every accumulator, a thread graph and two outputs, one of them from a post-loop op.
// CHECK-LABEL: func.func @all_accumulators(
// CHECK: %{{.*}}:2 = "mirage_kernel.graph_def"(%arg0, %arg1) ({
// CHECK-NEXT: ^bb0(%[[BX:.*]]: tensor<4x16xf32>, %[[BW:.*]]: tensor<16x32xf32>):
// CHECK-NEXT: %[[XT:.*]] = "mirage_block.input_iterator"(%[[BX]]) {fmap = 1 : i64, imap = array<i64: -1, -1, -1>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
// CHECK-NEXT: %[[WT:.*]] = "mirage_block.input_iterator"(%[[BW]]) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<16x32xf32>) -> tensor<8x16xf32>
// CHECK-NEXT: %[[M:.*]] = "mirage_block.matmul"(%[[XT]], %[[WT]]) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[MX:.*]] = "mirage_block.reduce_max"(%[[M]]) {dim = 1 : i64}
// CHECK-NEXT: %[[E:.*]] = "mirage_block.exp"(%[[M]])
// CHECK-NEXT: %[[SUM:.*]] = "mirage_block.accum_sum"(%[[M]]) : (tensor<4x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[MEAN:.*]] = "mirage_block.accum_mean"(%[[XT]]) {reduce_dim = 1 : i64} : (tensor<4x8xf32>) -> tensor<4x1xf32>
// CHECK-NEXT: %[[RMS:.*]] = "mirage_block.accum_rms"(%[[XT]]) {eps = 9.9999999999999995E-7 : f64, reduce_dim = 1 : i64}
// CHECK-NEXT: %[[MAX:.*]] = "mirage_block.accum_max"(%[[MX]])
// CHECK-NEXT: %[[RES:.*]] = "mirage_block.accum_rescaled_sum"(%[[E]], %[[MX]]) : (tensor<4x16xf32>, tensor<4x1xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[D:.*]] = "mirage_block.div"(%[[SUM]], %[[RMS]])
// CHECK-NEXT: %[[T:.*]] = "mirage_block.thread_graph"(%[[D]], %[[MEAN]], %[[RES]]) ({
// CHECK-NEXT: ^bb0(%[[A:.*]]: f32, %[[B:.*]]: f32, %[[C:.*]]: f32):
// CHECK-NEXT: %[[S:.*]] = "mirage_thread.sub"(%[[A]], %[[B]]) : (f32, f32) -> f32
// CHECK-NEXT: %[[P:.*]] = "mirage_thread.mul"(%[[S]], %[[C]]) : (f32, f32) -> f32
// CHECK-NEXT: gpu.yield %[[P]] : f32
// CHECK-NEXT: }) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>, tensor<4x1xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[ST:.*]] = "mirage_block.output_saver"(%[[T]]) {omap = array<i64: 1, -1, -1>} : (tensor<4x16xf32>) -> tensor<4x32xf32>
// CHECK-NEXT: %[[MM:.*]] = "mirage_block.add"(%[[MAX]], %[[MEAN]])
// CHECK-NEXT: %[[SM:.*]] = "mirage_block.output_saver"(%[[MM]]) {omap = array<i64: 1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x2xf32>
// CHECK-NEXT: gpu.yield %[[ST]], %[[SM]] : tensor<4x32xf32>, tensor<4x2xf32>
// CHECK-NEXT: }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 2 : i64, grid_dim = array<i64: 2, 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>}
func.func @all_accumulators(%x: tensor<4x16xf32>, %w: tensor<16x32xf32>) -> (tensor<4x32xf32>, tensor<4x2xf32>) {
  %o:2 = "mirage_kernel.graph_def"(%x, %w) ({
  ^bb0(%bx: tensor<4x16xf32>, %bw: tensor<16x32xf32>):
    %xt = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x8xf32>
    %wt = "mirage_block.input_iterator"(%bw) {imap = array<i64: 1, -1, -1>, fmap = 0} : (tensor<16x32xf32>) -> tensor<8x16xf32>
    %m = "mirage_block.matmul"(%xt, %wt) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %mx = "mirage_block.reduce_max"(%m) {dim = 1} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %e = "mirage_block.exp"(%m) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %sum = "mirage_block.accum_sum"(%m) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %mean = "mirage_block.accum_mean"(%xt) {reduce_dim = 1} : (tensor<4x8xf32>) -> tensor<4x1xf32>
    %rms = "mirage_block.accum_rms"(%xt) {reduce_dim = 1, eps = 1.0e-6} : (tensor<4x8xf32>) -> tensor<4x1xf32>
    %max = "mirage_block.accum_max"(%mx) : (tensor<4x1xf32>) -> tensor<4x1xf32>
    %res = "mirage_block.accum_rescaled_sum"(%e, %mx) : (tensor<4x16xf32>, tensor<4x1xf32>) -> tensor<4x16xf32>
    %d = "mirage_block.div"(%sum, %rms) : (tensor<4x16xf32>, tensor<4x1xf32>) -> tensor<4x16xf32>
    %t = "mirage_block.thread_graph"(%d, %mean, %res) ({
    ^bb0(%a: f32, %b: f32, %c: f32):
      %s = "mirage_thread.sub"(%a, %b) : (f32, f32) -> f32
      %p = "mirage_thread.mul"(%s, %c) : (f32, f32) -> f32
      gpu.yield %p : f32
    }) {operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>, tensor<4x1xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
    %st = "mirage_block.output_saver"(%t) {omap = array<i64: 1, -1, -1>} : (tensor<4x16xf32>) -> tensor<4x32xf32>
    %mm = "mirage_block.add"(%max, %mean) : (tensor<4x1xf32>, tensor<4x1xf32>) -> tensor<4x1xf32>
    %sm = "mirage_block.output_saver"(%mm) {omap = array<i64: 1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x2xf32>
    gpu.yield %st, %sm : tensor<4x32xf32>, tensor<4x2xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>, tensor<16x32xf32>) -> (tensor<4x32xf32>, tensor<4x2xf32>)
  return %o#0, %o#1 : tensor<4x32xf32>, tensor<4x2xf32>
}

// -----

// Loop-body operators on f16 tiles cast to f32, a 2-D grid splitting two dims.
// CHECK-LABEL: func.func @loop_body_ops(
// CHECK: "mirage_block.input_iterator"(%{{.*}}) {fmap = 2 : i64, imap = array<i64: 0, 1, -1>} : (tensor<2x8x16xf16>) -> tensor<1x2x4xf16>
// CHECK-NEXT: "mirage_block.cast"({{.*}}) : (tensor<1x2x4xf16>) -> tensor<1x2x4xf32>
// CHECK-NEXT: "mirage_block.square"
// CHECK-NEXT: "mirage_block.add_scalar"({{.*}}) {scalar = 1.000000e+00 : f64}
// CHECK-NEXT: "mirage_block.sqrt"
// CHECK-NEXT: "mirage_block.rsqrt"
// CHECK-NEXT: "mirage_block.silu"
// CHECK-NEXT: "mirage_block.gelu"
// CHECK-NEXT: "mirage_block.relu"
// CHECK-NEXT: "mirage_block.neg"
// CHECK-NEXT: "mirage_block.mul_scalar"({{.*}}) {scalar = 5.000000e-01 : f64}
// CHECK-NEXT: "mirage_block.sub"
// CHECK-NEXT: "mirage_block.mul"
// CHECK-NEXT: "mirage_block.pow"
// CHECK-NEXT: "mirage_block.max"
// CHECK-NEXT: "mirage_block.reduce_sum"({{.*}}) {dim = 2 : i64} : (tensor<1x2x4xf32>) -> tensor<1x2x1xf32>
// CHECK-NEXT: "mirage_block.reduce_mean"({{.*}}) {dim = 2 : i64}
// CHECK-NEXT: "mirage_block.add"
// CHECK-NEXT: "mirage_block.accum_sum"
// CHECK-NEXT: "mirage_block.output_saver"({{.*}}) {omap = array<i64: 0, 1, -1>} : (tensor<1x2x1xf32>) -> tensor<2x8x1xf32>
// CHECK: grid_dim = array<i64: 2, 4, 1>
func.func @loop_body_ops(%x: tensor<2x8x16xf16>) -> tensor<2x8x1xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<2x8x16xf16>):
    %xt = "mirage_block.input_iterator"(%bx) {imap = array<i64: 0, 1, -1>, fmap = 2} : (tensor<2x8x16xf16>) -> tensor<1x2x4xf16>
    %c = "mirage_block.cast"(%xt) : (tensor<1x2x4xf16>) -> tensor<1x2x4xf32>
    %0 = "mirage_block.square"(%c) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %1 = "mirage_block.add_scalar"(%0) {scalar = 1.0} : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %2 = "mirage_block.sqrt"(%1) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %3 = "mirage_block.rsqrt"(%2) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %4 = "mirage_block.silu"(%3) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %5 = "mirage_block.gelu"(%4) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %6 = "mirage_block.relu"(%5) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %7 = "mirage_block.neg"(%6) : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %8 = "mirage_block.mul_scalar"(%7) {scalar = 0.5} : (tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %9 = "mirage_block.sub"(%8, %c) : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %10 = "mirage_block.mul"(%9, %c) : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %11 = "mirage_block.pow"(%10, %c) : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %12 = "mirage_block.max"(%11, %c) : (tensor<1x2x4xf32>, tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
    %13 = "mirage_block.reduce_sum"(%12) {dim = 2} : (tensor<1x2x4xf32>) -> tensor<1x2x1xf32>
    %14 = "mirage_block.reduce_mean"(%12) {dim = 2} : (tensor<1x2x4xf32>) -> tensor<1x2x1xf32>
    %15 = "mirage_block.add"(%13, %14) : (tensor<1x2x1xf32>, tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
    %acc = "mirage_block.accum_sum"(%15) : (tensor<1x2x1xf32>) -> tensor<1x2x1xf32>
    %s = "mirage_block.output_saver"(%acc) {omap = array<i64: 0, 1, -1>} : (tensor<1x2x1xf32>) -> tensor<2x8x1xf32>
    gpu.yield %s : tensor<2x8x1xf32>
  }) {grid_dim = array<i64: 2, 4, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<2x8x16xf16>) -> tensor<2x8x1xf32>
  return %o : tensor<2x8x1xf32>
}

// -----
// dialect_verifier.py: block ops only inside graph_def.

func.func @block_op_outside(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'mirage_block.exp' may only appear inside 'mirage_kernel.graph_def'}}
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// bridge.py: a block graph holds mirage_block ops (and ends in gpu.yield).

func.func @kernel_op_inside(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{'mirage_kernel.exp' cannot appear in a block graph (expected mirage_block ops)}}
    %e = "mirage_kernel.exp"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%e) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @upstream_terminator(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{'ub.unreachable' cannot appear in a block graph (expected mirage_block ops)}}
    ub.unreachable
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @value_from_outside(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %outer = "mirage_kernel.exp"(%x) : (tensor<4x16xf32>) -> tensor<4x16xf32>
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{'mirage_block.input_iterator' uses a value defined outside its graph}}
    %t = "mirage_block.input_iterator"(%outer) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %e = "mirage_block.exp"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%e) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----
// graph_verify.py: the structure of a block graph.

func.func @kernel_tensor_read_directly(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{'exp' reads a kernel tensor directly; block graphs read through input_iterator}}
    %e = "mirage_block.exp"(%bx) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %a = "mirage_block.accum_sum"(%e) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: -1, -1, -1>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    gpu.yield %s : tensor<4x16xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}

// -----

func.func @post_loop_reads_loop_value(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{'add' runs after the loop but reads a per-iteration value; every path must cross one accumulator}}
    %b = "mirage_block.add"(%a, %t) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%b) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @yield_without_saver(%x: tensor<4x16xf32>) -> tensor<4x4xf32> {
  // expected-error @+1 {{the block graph must yield exactly the results of its output savers}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    gpu.yield %a : tensor<4x4xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x4xf32>
  return %o : tensor<4x4xf32>
}

// -----
// graph_verify.py: input iterators.

func.func @iterator_of_a_tile(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{input_iterator reads one argument of the block graph}}
    %t2 = "mirage_block.input_iterator"(%t) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t2) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @imap_entries(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{input_iterator needs imap (three entries) and fmap}}
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @imap_dims(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{imap [1, 1, -1] must give distinct dims in [0, 2) or -1}}
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, 1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @fmap_dim(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{fmap 2 is not a dim of tensor<4x16xf32> or -1}}
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 2} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @grid_does_not_divide(%x: tensor<4x16xf32>) -> tensor<12x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{input_iterator: grid dim y=3 does not divide tensor dim 0 of size 4}}
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, 0, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, 0, -1>} : (tensor<4x4xf32>) -> tensor<12x8xf32>
    gpu.yield %s : tensor<12x8xf32>
  }) {grid_dim = array<i64: 2, 3, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<12x8xf32>
  return %o : tensor<12x8xf32>
}

// -----

func.func @forloop_does_not_divide(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{input_iterator: forloop_range 3 does not divide the tile's dim 1 of size 8}}
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 3, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @tile_type(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{input_iterator tile tensor<4x8xf32> does not match the maps (expected a static tensor<4x4xf32>)}}
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x8xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x16xf32>
    gpu.yield %s : tensor<4x16xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}

// -----
// graph_verify.py: output savers.

func.func @omap_entries(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{output_saver needs omap with three entries}}
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @omap_dims(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{omap [5, -1, -1] must give distinct dims in [0, 2) or -1}}
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 5, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @saver_inside_loop(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{output_saver must follow a for-loop accumulator}}
    %s = "mirage_block.output_saver"(%t) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @saver_grid_unmapped(%x: tensor<4x16xf32>) -> tensor<4x4xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{output_saver: grid dim x=2 > 1 must map to an output dim (omap is -1)}}
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: -1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    gpu.yield %s : tensor<4x4xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x4xf32>
  return %o : tensor<4x4xf32>
}

// -----

func.func @saver_type(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{output_saver result tensor<4x16xf32> does not match the omap (expected tensor<4x8xf32>)}}
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x16xf32>
    gpu.yield %s : tensor<4x16xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}

// -----
// graph_verify.py: for-loop accumulators.

func.func @two_accumulators_on_a_path(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{'accum_max' accumulates a value computed after the loop (a path crosses two accumulators)}}
    %b = "mirage_block.accum_max"(%a) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%b) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @accumulator_reduce_dim(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{'accum_mean': dim 3 is out of range for rank 2}}
    %a = "mirage_block.accum_mean"(%t) {reduce_dim = 3} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @rescaled_sum_broadcast(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %full = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    // expected-error @+1 {{'accum_rescaled_sum': operand dims do not broadcast: 4 vs 16}}
    %a = "mirage_block.accum_rescaled_sum"(%t, %full) : (tensor<4x4xf32>, tensor<4x16xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @rescaled_sum_wider_maxima(%x: tensor<4x16xf32>) -> tensor<4x2xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %r = "mirage_block.reduce_sum"(%t) {dim = 1} : (tensor<4x4xf32>) -> tensor<4x1xf32>
    // expected-error @+1 {{'accum_rescaled_sum': its maxima [4, 4] do not broadcast into its operand [4, 1]}}
    %a = "mirage_block.accum_rescaled_sum"(%r, %t) : (tensor<4x1xf32>, tensor<4x4xf32>) -> tensor<4x1xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x2xf32>
    gpu.yield %s : tensor<4x2xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x2xf32>
  return %o : tensor<4x2xf32>
}

// -----

func.func @accumulator_result(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{'accum_rms' result tensor<4x4xf32> does not match its input (expected shape [4, 1])}}
    %a = "mirage_block.accum_rms"(%t) {reduce_dim = 1, eps = 1.0e-6} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----
// graph_verify.py: operators inside a block graph follow the kernel-level rules.

func.func @block_matmul_shapes(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %full = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    // expected-error @+1 {{'matmul': matmul contraction dims differ: 16 vs 4}}
    %m = "mirage_block.matmul"(%full, %t) : (tensor<4x16xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%m) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----
// IRDL inside a block graph: accumulator operand counts, map attribute kinds, unknown ops.

func.func @rescaled_sum_operands(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{op expects exactly 2 operands, but got 1}}
    %a = "mirage_block.accum_rescaled_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @imap_kind(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    // expected-error @+1 {{expected base attribute 'builtin.dense_array' but got 'builtin.integer'}}
    %t = "mirage_block.input_iterator"(%bx) {imap = 1, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @missing_omap(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{'mirage_block.output_saver' op attribute "omap" is expected but not provided}}
    %s = "mirage_block.output_saver"(%a) : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @no_rms_norm_in_blocks(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x4xf32>
    // expected-error @+1 {{unregistered operation 'mirage_block.rms_norm' found in dialect ('mirage_block')}}
    %n = "mirage_block.rms_norm"(%t) {eps = 1.0e-6} : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %a = "mirage_block.accum_sum"(%n) : (tensor<4x4xf32>) -> tensor<4x4xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: 1, -1, -1>} : (tensor<4x4xf32>) -> tensor<4x8xf32>
    gpu.yield %s : tensor<4x8xf32>
  }) {grid_dim = array<i64: 2, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

// Optional attributes are unknown to IRDL: our verifier checks their kinds.
func.func @float_reduce_dim(%x: tensor<4x16xf32>) -> tensor<4x1xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x16xf32>) -> tensor<4x8xf32>
    // expected-error @+1 {{'accum_rms' attribute 'reduce_dim' must be an integer, got 1.5}}
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1.5} : (tensor<4x8xf32>) -> tensor<4x1xf32>
    %s = "mirage_block.output_saver"(%r) {omap = array<i64: -1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x1xf32>
    gpu.yield %s : tensor<4x1xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x1xf32>
  return %o : tensor<4x1xf32>
}

// -----

// Kernel-level tensors may have dynamic dims; the tiles of the block graph stay static.
// CHECK-LABEL: func.func @dynamic_rows(
// CHECK: "mirage_block.input_iterator"(%{{.*}}) {fmap = -1 : i64, imap = array<i64: 0, -1, -1>} : (tensor<?x64xf32>) -> tensor<4x64xf32>
// CHECK: "mirage_block.output_saver"(%{{.*}}) {omap = array<i64: 0, -1, -1>} : (tensor<4x1xf32>) -> tensor<?x1xf32>
func.func @dynamic_rows(%x: tensor<?x64xf32>) -> tensor<?x1xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<?x64xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: 0, -1, -1>, fmap = -1} : (tensor<?x64xf32>) -> tensor<4x64xf32>
    %r = "mirage_block.accum_rms"(%t) {reduce_dim = 1} : (tensor<4x64xf32>) -> tensor<4x1xf32>
    %s = "mirage_block.output_saver"(%r) {omap = array<i64: 0, -1, -1>} : (tensor<4x1xf32>) -> tensor<?x1xf32>
    gpu.yield %s : tensor<?x1xf32>
  }) {grid_dim = array<i64: 8, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<?x64xf32>) -> tensor<?x1xf32>
  return %o : tensor<?x1xf32>
}
