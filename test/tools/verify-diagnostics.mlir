// --verify-diagnostics: MLIR's expected-* designators. Every diagnostic must be expected and every
// designator met; the run then succeeds. (The failing cases are in verify-diagnostics-fail.mlir;
// warnings, remarks and @unknown, which no op here emits, are unit-tested in test/test_tools.py.)
// RUN: mirage-opt %s -split-input-file -verify-diagnostics -o %t
// The same with mlir-opt's spelling of the flags and the only-expected level.
// RUN: mirage-opt -split-input-file --verify-diagnostics=only-expected %s -o %t

// On the same line.
func.func @same_line(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %r = "mirage_kernel.add"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32> // expected-error {{expects exactly 2 operands, but got 1}}
  return %r : tensor<4x8xf32>
}

// -----
// @+N and @-N count lines from the designator.

func.func @offsets(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+2 {{expects exactly 2 operands}}

  %r = "mirage_kernel.add"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @offsets(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %r = "mirage_kernel.add"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>

  // expected-error@-2 {{expects exactly 2 operands}}
  return %r : tensor<4x8xf32>
}

// -----
// @above and @below skip other designator lines.

func.func @above_below(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @below {{'mirage_block.exp' may only appear inside 'mirage_kernel.graph_def'}}
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %s = "mirage_block.exp"(%r) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  // expected-error @above {{may only appear inside 'mirage_kernel.graph_def'}}
  return %s : tensor<4x8xf32>
}

// -----
// Consecutive @below designators name the same line (here an error and its note).

func.func @unknown_dialect() {
  // expected-error @below {{Dialect `foo' not found for custom op 'foo.bar'}}
  // expected-note @below {{Available dialects:}}
  %x = foo.bar : i32
  return
}

// -----
// -re designators: {{...}} parts are regexes, the rest is literal (brackets included).

func.func @regex(%a: tensor<4x8xf32>, %b: tensor<4x8xf16>) -> tensor<4x8xf32> {
  // expected-error-re @+1 {{'add' mixes element types ['f16', 'f32']; convert with {{'[a-z]+'}}}}
  %r = "mirage_kernel.add"(%a, %b) : (tensor<4x8xf32>, tensor<4x8xf16>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// Without -re, {{ }} inside the text are literal and the text matches as a substring.

func.func @literal(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{mirage_block.exp}}
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----
// Notes are diagnostics of their own (the "see current operation" notes are not emitted here,
// as in mlir-opt).

func.func @note(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {
  // expected-note @+1 {{prior use here}}
  %r = "mirage_kernel.reduce_sum"(%a) {dim = 1} : (tensor<4x8xf32>) -> tensor<4x1xf32>
  // expected-error @+1 {{use of value '%r' expects different type than prior uses}}
  return %r : tensor<4x2xf32>
}

// -----
// Chunks without diagnostics pass.

func.func @valid() {
  return
}

// -----
// Errors of a pass are matched as well: here the mirage verifier run after parsing.

func.func @nested(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{forloop_range must be in [1, 65536], got 0}}
  %o = "mirage_kernel.graph_def"(%x) ({
  ^bb0(%bx: tensor<4x16xf32>):
    %t = "mirage_block.input_iterator"(%bx) {imap = array<i64: -1, -1, -1>, fmap = -1} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %a = "mirage_block.accum_sum"(%t) : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.output_saver"(%a) {omap = array<i64: -1, -1, -1>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    gpu.yield %s : tensor<4x16xf32>
  }) {grid_dim = array<i64: 1, 1, 1>, block_dim = array<i64: 128, 1, 1>, forloop_range = 0, operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}
