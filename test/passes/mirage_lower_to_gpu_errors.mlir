// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(mirage-lower-to-gpu)' -verify-diagnostics

// What convert-linalg-to-mirage left in linalg cannot run on the GPU.
func.func @g(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'linalg.copy' cannot be lowered to the GPU: only mirage_kernel ops are (run convert-linalg-to-mirage first)}}
  %1 = linalg.copy ins(%a : tensor<4xf32>) outs(%b : tensor<4xf32>) -> tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

// f64 has no GPU lowering yet; the error points at the op.
func.func @h(%a: tensor<4x8xf64>) -> tensor<4x8xf64> {
  // expected-error @+1 {{'exp' on tensor<4x8xf64>: f64 tensors have no GPU lowering (f16, bf16 and f32 do)}}
  %0 = "mirage_kernel.exp"(%a) : (tensor<4x8xf64>) -> tensor<4x8xf64>
  return %0 : tensor<4x8xf64>
}
