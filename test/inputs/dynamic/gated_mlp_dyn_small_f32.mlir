// gated_mlp (dynamic batch, f32): O = silu(X@W1) * (X@W2); shapes X [?,64], W1 [64,128], W2 [64,128]; written by hand after torch-mlir's dynamic-shape output (torch.export Dim: tensor<?x..>, tensor.dim, tensor.empty(%dim), cf.assert broadcast checks; ../shared/PLATFORM.md), as torch-mlir is not installed here.
#map = affine_map<(d0, d1) -> (d0, d1)>
module {
  func.func @main(%arg0: tensor<?x64xf32>, %arg1: tensor<64x128xf32>, %arg2: tensor<64x128xf32>) -> tensor<?x128xf32> {
    %c0 = arith.constant 0 : index
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %dim = tensor.dim %arg0, %c0 : tensor<?x64xf32>
    %0 = tensor.empty(%dim) : tensor<?x128xf32>
    %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %2 = linalg.matmul ins(%arg0, %arg1 : tensor<?x64xf32>, tensor<64x128xf32>) outs(%1 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %3 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%2 : tensor<?x128xf32>) outs(%0 : tensor<?x128xf32>) {
    ^bb0(%in: f32, %out: f32):
      %9 = arith.negf %in : f32
      %10 = math.exp %9 : f32
      %11 = arith.addf %10, %cst_0 : f32
      %12 = arith.divf %cst_0, %11 : f32
      linalg.yield %12 : f32
    } -> tensor<?x128xf32>
    %dim_1 = tensor.dim %2, %c0 : tensor<?x128xf32>
    %dim_2 = tensor.dim %3, %c0 : tensor<?x128xf32>
    %4 = arith.cmpi eq, %dim_1, %dim_2 : index
    cf.assert %4, "mismatched size for broadcast"
    %5 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%2, %3 : tensor<?x128xf32>, tensor<?x128xf32>) outs(%0 : tensor<?x128xf32>) {
    ^bb0(%in: f32, %in_5: f32, %out: f32):
      %9 = arith.mulf %in, %in_5 : f32
      linalg.yield %9 : f32
    } -> tensor<?x128xf32>
    %6 = linalg.matmul ins(%arg0, %arg2 : tensor<?x64xf32>, tensor<64x128xf32>) outs(%1 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %dim_3 = tensor.dim %5, %c0 : tensor<?x128xf32>
    %dim_4 = tensor.dim %6, %c0 : tensor<?x128xf32>
    %7 = arith.cmpi eq, %dim_3, %dim_4 : index
    cf.assert %7, "mismatched size for broadcast"
    %8 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%5, %6 : tensor<?x128xf32>, tensor<?x128xf32>) outs(%0 : tensor<?x128xf32>) {
    ^bb0(%in: f32, %in_5: f32, %out: f32):
      %9 = arith.mulf %in, %in_5 : f32
      linalg.yield %9 : f32
    } -> tensor<?x128xf32>
    return %8 : tensor<?x128xf32>
  }
}
