// Ops of unknown dialects are errors unless --allow-unregistered-dialect; ops of our dialects must
// still be known ones.
// RUN: not mirage-opt %s 2>&1 | FileCheck %s --check-prefix=UNREG
// RUN: mirage-opt %s -split-input-file --allow-unregistered-dialect -verify-diagnostics | FileCheck %s --check-prefix=ALLOW

// UNREG: unregistered-dialect.mlir:[[@LINE+3]]:10: error: operation being parsed with an unregistered dialect
// ALLOW: "my.op"() : () -> ()
func.func @g() {
  "my.op"() : () -> ()
  return
}

// -----

func.func @h(%a: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{unregistered operation 'mirage_kernel.my_op' found in dialect ('mirage_kernel') that does not allow unknown operations}}
  %e = "mirage_kernel.my_op"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %e : tensor<4xf32>
}
