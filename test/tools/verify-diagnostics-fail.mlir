// --verify-diagnostics fails (exit 1) on unexpected diagnostics, unmet designators, a severity that
// differs, and malformed -re designators; each is reported at its line.
// RUN: not mirage-opt %s -split-input-file -verify-diagnostics -o %t 2>&1 | FileCheck %s
// With only-expected, unexpected diagnostics are ignored but unmet designators still fail.
// RUN: not mirage-opt %s -split-input-file -verify-diagnostics=only-expected -o %t 2>&1 | FileCheck %s --check-prefix=ONLY

func.func @unexpected(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+4]]:8: error: unexpected error: 'mirage_block.exp' may only appear inside 'mirage_kernel.graph_def'
  // CHECK-NEXT: {{^}}  %r = "mirage_block.exp"
  // CHECK-NEXT: {{^}}       ^
  // ONLY-NOT: unexpected error
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @not_produced() {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+2]]:6: error: expected error "nothing says this" was not produced
  // ONLY: verify-diagnostics-fail.mlir:[[@LINE+1]]:6: error: expected error "nothing says this" was not produced
  // expected-error @+1 {{nothing says this}}
  return
}

// -----

func.func @wrong_line(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+3]]:8: error: unexpected error: 'mirage_block.exp' may only appear
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+1]]:6: error: expected error "may only appear" was not produced
  // expected-error @+2 {{may only appear}}
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @wrong_severity(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+2]]:6: error: 'error' diagnostic emitted when expecting a 'warning'
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+1]]:6: error: expected warning "may only appear" was not produced
  // expected-warning @+1 {{may only appear}}
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}

// -----

func.func @bad_regex() {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+2]]:6: error: invalid regex: {{.*}}
  // ONLY: verify-diagnostics-fail.mlir:[[@LINE+1]]:6: error: invalid regex: {{.*}}
  // expected-error-re @+1 {{bad {{[0-9}} regex}}
  return
}

// -----

func.func @unterminated_regex() {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+1]]:6: error: found start of regex with no end '}}'
  // expected-error-re @+1 {{text {{[0-9]+}}
  return
}

// -----

// A plain designator never takes {{ }} as a regex.
func.func @literal_braces(%a: tensor<4x8xf32>) -> tensor<4x8xf32> {
  // CHECK: verify-diagnostics-fail.mlir:[[@LINE+1]]:6: error: expected error "may only {{[{][{]}}.*{{[}][}]}} appear" was not produced
  // expected-error @+1 {{may only {{.*}} appear}}
  %r = "mirage_block.exp"(%a) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %r : tensor<4x8xf32>
}
