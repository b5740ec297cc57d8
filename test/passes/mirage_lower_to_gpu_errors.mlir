// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu)' -verify-diagnostics

// What convert-linalg-to-mirage left in linalg cannot run on the GPU.
func.func @g(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'linalg.copy' cannot be lowered to the GPU: only mirage_kernel ops are (run convert-linalg-to-mirage first)}}
  %1 = linalg.copy ins(%a : tensor<4xf32>) outs(%b : tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

// Dynamic shapes have no GPU lowering yet; the error points at the function.
// expected-error @+1 {{GPU lowering failed: argument of type tensor<?x8xf32>: the GPU lowering needs static shapes}}
func.func @h(%a: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %0 = "mirage_kernel.exp"(%a) : (tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
