// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu)' -verify-diagnostics
// RUN: not mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu{constant-inputs=x})' 2>&1 | FileCheck %s --check-prefix=BADOPT
// RUN: not mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu{constant-inputs=7})' 2>&1 | FileCheck %s --check-prefix=BADINDEX
// BADOPT: <pass-pipeline>:1:16: error: option 'constant-inputs' expects argument indices such as '1,2', got 'x'
// BADINDEX: mirage_lower_to_gpu_errors.mlir:{{[0-9]+}}:1: error: GPU lowering failed: constant inputs [7]: the program has 2 inputs

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

// -----

// Lowers as it is; with constant-inputs=7 (past its two arguments) the error points at the function.
func.func @two_inputs(%a: tensor<16x64xf32>, %b: tensor<64x32xf32>) -> tensor<16x32xf32> {
  %0 = "mirage_kernel.matmul"(%a, %b) : (tensor<16x64xf32>, tensor<64x32xf32>) -> tensor<16x32xf32>
  return %0 : tensor<16x32xf32>
}
