// Round trip and verification of the mirage_kernel dialect (and of graph_def as a kernel node).
// Valid chunks are printed (and printed again after reparsing, also from the generic form);
// invalid chunks must give exactly the errors they expect.
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics | mirage-opt -split-input-file | FileCheck %s
// RUN: mirage-opt %s -split-input-file -verify-diagnostics -mlir-print-op-generic | mirage-opt -split-input-file | FileCheck %s

// Every predefined operator of the kernel level, in the generic form IRDL ops print in.
// CHECK-LABEL: func.func @opset(
// CHECK-SAME: %[[X:.*]]: tensor<4x64xf32>, %[[W:.*]]: tensor<64x128xf32>, %[[B:.*]]: tensor<4x1xf32>, %[[H:.*]]: tensor<4x64xf16>)
// CHECK-NEXT: %[[V0:.*]] = "mirage_kernel.exp"(%[[X]]) : (tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT: %[[V1:.*]] = "mirage_kernel.square"(%[[V0]])
// CHECK-NEXT: %[[V2:.*]] = "mirage_kernel.sqrt"(%[[V1]])
// CHECK-NEXT: %[[V3:.*]] = "mirage_kernel.rsqrt"(%[[V2]])
// CHECK-NEXT: %[[V4:.*]] = "mirage_kernel.silu"(%[[V3]])
// CHECK-NEXT: %[[V5:.*]] = "mirage_kernel.gelu"(%[[V4]])
// CHECK-NEXT: %[[V6:.*]] = "mirage_kernel.relu"(%[[V5]])
// CHECK-NEXT: %[[V7:.*]] = "mirage_kernel.neg"(%[[V6]])
// CHECK-NEXT: %[[V8:.*]] = "mirage_kernel.mul_scalar"(%[[V7]]) {scalar = 5.000000e-01 : f64}
// CHECK-NEXT: %[[V9:.*]] = "mirage_kernel.add_scalar"(%[[V8]]) {scalar = 2.000000e+00 : f64}
// CHECK-NEXT: %[[V10:.*]] = "mirage_kernel.add"(%[[V9]], %[[B]]) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
// CHECK-NEXT: %[[V11:.*]] = "mirage_kernel.sub"(%[[V10]], %[[X]])
// CHECK-NEXT: %[[V12:.*]] = "mirage_kernel.mul"(%[[V11]], %[[B]])
// CHECK-NEXT: %[[V13:.*]] = "mirage_kernel.div"(%[[V12]], %[[B]])
// CHECK-NEXT: %[[V14:.*]] = "mirage_kernel.pow"(%[[V13]], %[[B]])
// CHECK-NEXT: %[[V15:.*]] = "mirage_kernel.max"(%[[V14]], %[[X]])
// CHECK-NEXT: "mirage_kernel.reduce_sum"(%[[V15]]) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
// CHECK-NEXT: "mirage_kernel.reduce_mean"(%[[V15]]) {dim = 1 : i64}
// CHECK-NEXT: "mirage_kernel.reduce_max"(%[[V15]]) {dim = -1 : i64}
// CHECK-NEXT: %[[V19:.*]] = "mirage_kernel.rms_norm"(%[[V15]]) {eps = 9.9999999999999995E-7 : f64}
// CHECK-NEXT: %[[V20:.*]] = "mirage_kernel.matmul"(%[[V19]], %[[W]]) : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
// CHECK-NEXT: %[[V21:.*]] = "mirage_kernel.cast"(%[[V19]]) : (tensor<4x64xf32>) -> tensor<4x64xf16>
// CHECK-NEXT: %[[V22:.*]] = "mirage_kernel.add"(%[[V21]], %[[H]]) : (tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<4x64xf16>
// CHECK-NEXT: return %[[V20]], %[[V22]]
func.func @opset(%x: tensor<4x64xf32>, %w: tensor<64x128xf32>, %b: tensor<4x1xf32>, %h: tensor<4x64xf16>) -> (tensor<4x128xf32>, tensor<4x64xf16>) {
  %0 = "mirage_kernel.exp"(%x) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %1 = "mirage_kernel.square"(%0) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %2 = "mirage_kernel.sqrt"(%1) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %3 = "mirage_kernel.rsqrt"(%2) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %4 = "mirage_kernel.silu"(%3) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %5 = "mirage_kernel.gelu"(%4) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %6 = "mirage_kernel.relu"(%5) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %7 = "mirage_kernel.neg"(%6) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %8 = "mirage_kernel.mul_scalar"(%7) {scalar = 0.5} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %9 = "mirage_kernel.add_scalar"(%8) {scalar = 2.0} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %10 = "mirage_kernel.add"(%9, %b) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %11 = "mirage_kernel.sub"(%10, %x) : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
  %12 = "mirage_kernel.mul"(%11, %b) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %13 = "mirage_kernel.div"(%12, %b) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %14 = "mirage_kernel.pow"(%13, %b) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
  %15 = "mirage_kernel.max"(%14, %x) : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
  %16 = "mirage_kernel.reduce_sum"(%15) {dim = 1} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  %17 = "mirage_kernel.reduce_mean"(%15) {dim = 1} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  %18 = "mirage_kernel.reduce_max"(%15) {dim = -1} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  %19 = "mirage_kernel.rms_norm"(%15) {eps = 1.0e-6} : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %20 = "mirage_kernel.matmul"(%19, %w) : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
  %21 = "mirage_kernel.cast"(%19) : (tensor<4x64xf32>) -> tensor<4x64xf16>
  %22 = "mirage_kernel.add"(%21, %h) : (tensor<4x64xf16>, tensor<4x64xf16>) -> tensor<4x64xf16>
  return %20, %22 : tensor<4x128xf32>, tensor<4x64xf16>
}

// -----

// Batched matmul, dynamic dims and the other float types.
// CHECK-LABEL: func.func @batched(
// CHECK: "mirage_kernel.matmul"(%{{.*}}, %{{.*}}) : (tensor<2x16x8xbf16>, tensor<2x8x32xbf16>) -> tensor<2x16x32xbf16>
// CHECK: "mirage_kernel.reduce_sum"(%{{.*}}) {dim = 1 : i64} : (tensor<?x64xf64>) -> tensor<?x1xf64>
func.func @batched(%q: tensor<2x16x8xbf16>, %k: tensor<2x8x32xbf16>, %d: tensor<?x64xf64>) -> (tensor<2x16x32xbf16>, tensor<?x1xf64>) {
  %0 = "mirage_kernel.matmul"(%q, %k) : (tensor<2x16x8xbf16>, tensor<2x8x32xbf16>) -> tensor<2x16x32xbf16>
  %1 = "mirage_kernel.reduce_sum"(%d) {dim = 1} : (tensor<?x64xf64>) -> tensor<?x1xf64>
  return %0, %1 : tensor<2x16x32xbf16>, tensor<?x1xf64>
}

// -----

// Mirage's RMSNorm + Linear plan at small size: X [4,64], W [64,128], grid 4 over W's columns,
// a for-loop of 4 over K; rms and matmul accumulated, divided after the loop.
// CHECK-LABEL: func.func @rmsnorm_linear(
// CHECK: %[[O:.*]] = "mirage_kernel.graph_def"(%arg0, %arg1) ({
// CHECK-NEXT: ^bb0(%[[BX:.*]]: tensor<4x64xf32>, %[[BW:.*]]: tensor<64x128xf32>):
// CHECK-NEXT: %[[XT:.*]] = "mirage_block.input_iterator"(%[[BX]]) {fmap = 1 : i64, imap = array<i64: -1, -1, -1>} : (tensor<4x64xf32>) -> tensor<4x16xf32>
// CHECK-NEXT: %[[WT:.*]] = "mirage_block.input_iterator"(%[[BW]]) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<64x128xf32>) -> tensor<16x32xf32>
// CHECK-NEXT: %[[M:.*]] = "mirage_block.matmul"(%[[XT]], %[[WT]])
// CHECK-NEXT: %[[ACC:.*]] = "mirage_block.accum_sum"(%[[M]])
// CHECK-NEXT: %[[R:.*]] = "mirage_block.accum_rms"(%[[XT]]) {eps = 9.9999999999999995E-7 : f64, reduce_dim = 1 : i64}
// CHECK-NEXT: %[[D:.*]] = "mirage_block.div"(%[[ACC]], %[[R]])
// CHECK-NEXT: %[[S:.*]] = "mirage_block.output_saver"(%[[D]]) {omap = array<i64: 1, -1, -1>} : (tensor<4x32xf32>) -> tensor<4x128xf32>
// CHECK-NEXT: gpu.yield %[[S]] : tensor<4x128xf32>
// CHECK-NEXT: }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 4, 1, 1>, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>}
// CHECK-NEXT: return %[[O]]
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
// IRDL: a required attribute is missing.

func.func @missing_attribute(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {
  // expected-error @+1 {{'mirage_kernel.reduce_sum' op attribute "dim" is expected but not provided}}
  %r = "mirage_kernel.reduce_sum"(%a) : (tensor<4x8xf32>) -> tensor<4x1xf32>
  return %r : tensor<4x1xf32>
}

// -----
// IRDL: an attribute of the wrong kind.

func.func @attribute_kind(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {
  // expected-error @+1 {{expected base attribute 'builtin.integer' but got 'builtin.float'}}
  %r = "mirage_kernel.reduce_sum"(%a) {dim = 1.0} : (tensor<4x8xf32>) -> tensor<4x1xf32>
  return %r : tensor<4x1xf32>
}

// -----

func.func @scalar_kind(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{expected base attribute 'builtin.float' but got 'builtin.integer'}}
  %r = "mirage_kernel.mul_scalar"(%a) {scalar = 2} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// IRDL: operand and result counts.

func.func @operand_count(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{op expects exactly 2 operands, but got 1}}
  %r = "mirage_kernel.add"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @result_count(%a: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  // expected-error @+1 {{op expects exactly 1 results, but got 2}}
  %r:2 = "mirage_kernel.exp"(%a) : (tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>)
  return %r#0, %r#1 : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----
// IRDL: kernel ops take tensors.

func.func @not_a_tensor(%a: f32) -> f32 {
  // expected-error @+1 {{expected base type 'builtin.tensor' but got 'builtin.f32'}}
  %r = "mirage_kernel.exp"(%a) : (f32) -> f32
  return %r : f32
}

// -----

func.func @unknown_op(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{unregistered operation 'mirage_kernel.bogus' found in dialect ('mirage_kernel') that does not allow unknown operations}}
  %r = "mirage_kernel.bogus"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// IRDL: graph_def needs its attributes, segment sizes (variadic operands) and one region.

func.func @graph_def_missing_forloop(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'mirage_kernel.graph_def' op attribute "forloop_range" is expected but not provided}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @graph_def_missing_segments(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'operandSegmentSizes' attribute is expected but not provided}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @graph_def_bad_segments(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{element 0 in 'operandSegmentSizes' attribute must be equal to 0 or 1}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 2, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @graph_def_without_region(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'mirage_kernel.graph_def' op unexpected number of regions: expected 1 but got 0}}
  %o = "mirage_kernel.graph_def"(%x) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----
// bridge.py: what cannot be read as a mu-graph.

func.func @graph_def_two_blocks(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'mirage_kernel.graph_def' needs a region with exactly one block}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    cf.br ^bb1
  ^bb1:
    gpu.yield %bx : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @graph_def_no_blocks(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'mirage_kernel.graph_def' needs a region with exactly one block}}
  %o = "mirage_kernel.graph_def"(%x) ({
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @unsupported_attribute(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{attribute 'note' has an unsupported kind: [1, 2]}}
  %r = "mirage_kernel.exp"(%a) {note = [1, 2]} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// graph_verify.py: element types and shapes of kernel operators.

func.func @element_type(%a: tensor<4x8xi32>) -> tensor<4x8xi32> {
  // expected-error @+1 {{unsupported element type 'i32' (expected one of f16, bf16, f32, f64)}}
  %r = "mirage_kernel.exp"(%a) : (tensor<4x8xi32>) -> tensor<4x8xi32>
  return %r : tensor<4x8xi32>
}

// -----

func.func @broadcast_ranks(%a: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'add': operands must have equal ranks to broadcast, got 2 and 1}}
  %r = "mirage_kernel.add"(%a, %b) : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @broadcast_dims(%a: tensor<4x8xf32>, %b: tensor<4x4xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'mul': operand dims do not broadcast: 8 vs 4}}
  %r = "mirage_kernel.mul"(%a, %b) : (tensor<4x8xf32>, tensor<4x4xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @reduce_dim_range(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {
  // expected-error @+1 {{'reduce_sum': dim 2 is out of range for rank 2}}
  %r = "mirage_kernel.reduce_sum"(%a) {dim = 2} : (tensor<4x8xf32>) -> tensor<4x1xf32>
  return %r : tensor<4x1xf32>
}

// -----

func.func @matmul_rank(%a: tensor<8xf32>, %b: tensor<8x4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'matmul': matmul needs operands of equal rank >= 2, got ranks 1 and 2}}
  %r = "mirage_kernel.matmul"(%a, %b) : (tensor<8xf32>, tensor<8x4xf32>) -> tensor<4xf32>
  return %r : tensor<4xf32>
}

// -----

func.func @matmul_batch(%a: tensor<2x4x8xf32>, %b: tensor<3x8x4xf32>) -> tensor<2x4x4xf32> {
  // expected-error @+1 {{'matmul': matmul batch dims differ: 2 vs 3}}
  %r = "mirage_kernel.matmul"(%a, %b) : (tensor<2x4x8xf32>, tensor<3x8x4xf32>) -> tensor<2x4x4xf32>
  return %r : tensor<2x4x4xf32>
}

// -----

func.func @matmul_contraction(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{'matmul': matmul contraction dims differ: 8 vs 4}}
  %r = "mirage_kernel.matmul"(%a, %b) : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @result_type(%a: tensor<4x8xf32>) -> tensor<4x9xf32> {
  // expected-error @+1 {{'exp' result type tensor<4x9xf32> does not match the inferred tensor<4x8xf32>}}
  %r = "mirage_kernel.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x9xf32>
  return %r : tensor<4x9xf32>
}

// -----

func.func @mixed_types(%a: tensor<4x8xf32>, %b: tensor<4x8xf16>) -> tensor<4x8xf32> {
  // expected-error-re @+1 {{'add' mixes element types [{{.*}}]; convert with 'cast'}}
  %r = "mirage_kernel.add"(%a, %b) : (tensor<4x8xf32>, tensor<4x8xf16>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// graph_verify.py: graph_def as a kernel node (its attributes, operands and results).

func.func @grid_dim(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{grid_dim must be three positive sizes, got [0, 1, 1]}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 0, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @grid_beyond_cuda(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{grid_dim [1, 70000, 1] exceeds a CUDA grid ([2147483647, 65535, 65535])}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 70000, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @block_dim(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{block_dim must be three positive sizes with at most 1024 threads, got [2048, 1, 1]}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 2048, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

// max_stages: a schedule attribute (the deepest cp.async ring the code generator may use), kept
// through a round trip.
// CHECK-LABEL: func.func @max_stages(
// CHECK: }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 1, 1, 1>, max_stages = 8 : i64,
func.func @max_stages(%x: tensor<4x64xf32>) -> tensor<4x1xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x64xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.accum_sum"(%t) {reduce_dim = 1} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x1xf32>
    gpu.yield %r : tensor<4x1xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4, max_stages = 8, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  return %o : tensor<4x1xf32>
}

// -----

func.func @max_stages_too_deep(%x: tensor<4x64xf32>) -> tensor<4x1xf32> {
  // expected-error @+1 {{max_stages must be in [0, 16] (0 or absent: the generator's default), got 17}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x64xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.accum_sum"(%t) {reduce_dim = 1} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x1xf32>
    gpu.yield %r : tensor<4x1xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4, max_stages = 17, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  return %o : tensor<4x1xf32>
}

// -----

// whole_k_warps: a schedule attribute (each warp's mma tiles walk the whole K), kept through a round
// trip.
// CHECK-LABEL: func.func @whole_k_warps(
// CHECK: }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 1, 1, 1>,
// CHECK-SAME: whole_k_warps = 1 : i64}
func.func @whole_k_warps(%x: tensor<4x64xf32>) -> tensor<4x1xf32> {
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x64xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.accum_sum"(%t) {reduce_dim = 1} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x1xf32>
    gpu.yield %r : tensor<4x1xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4, whole_k_warps = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  return %o : tensor<4x1xf32>
}

// -----

func.func @whole_k_warps_not_a_flag(%x: tensor<4x64xf32>) -> tensor<4x1xf32> {
  // expected-error @+1 {{whole_k_warps must be 0 or 1 (absent: 0), got 2}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x64xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = 1} : (tensor<4x64xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.accum_sum"(%t) {reduce_dim = 1} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x1xf32>) -> tensor<4x1xf32>
    gpu.yield %r : tensor<4x1xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 4, whole_k_warps = 2, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>) -> tensor<4x1xf32>
  return %o : tensor<4x1xf32>
}

// -----

func.func @forloop_range(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{forloop_range must be in [1, 65536], got 0}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 0, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @forloop_range_huge(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{forloop_range must be in [1, 65536], got 2147483648}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 2147483648, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @argument_types(%x: tensor<4x8xf32>) -> tensor<4x8xf16> {
  // expected-error @+1 {{the block graph's arguments must have the graph_def's operand types}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf16>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf16>) -> tensor<4x8xf16>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf16>) -> tensor<4x8xf16>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf16>) -> tensor<4x8xf16>
    gpu.yield %r : tensor<4x8xf16>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf16>
  return %o : tensor<4x8xf16>
}

// -----

func.func @result_count_mismatch(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{graph_def has 1 results but its block graph yields 2}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r2 = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r, %r2 : tensor<4x8xf32>, tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %o : tensor<4x8xf32>
}

// -----

func.func @result_type_mismatch(%x: tensor<4x8xf32>) -> tensor<8x8xf32> {
  // expected-error @+1 {{result 0 has type tensor<8x8xf32> but the block graph yields tensor<4x8xf32>}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x8xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %s = "mirage_block.accum_sum"(%t) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %r = "mirage_block.output_saver"(%s) {omap = array<i64: -1, -1, -1>} : (tensor<4x8xf32>) -> tensor<4x8xf32>
    gpu.yield %r : tensor<4x8xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 1, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x8xf32>) -> tensor<8x8xf32>
  return %o : tensor<8x8xf32>
}
