// gated_mlp (dynamic batch, f16): O = silu(X@W1) * (X@W2); shapes X [?,4096], W1 [4096,4096], W2 [4096,4096]; written by hand after torch-mlir's dynamic-shape output (torch.export Dim: tensor<?x..>, tensor.dim, tensor.empty(%dim), cf.assert broadcast checks; ../shared/PLATFORM.md), as torch-mlir is not installed here.
#map = affine_map<(d0, d1) -> (d0, d1)>
module {
  func.func @main(%arg0: tensor<?x4096xf16>, %arg1: tensor<4096x4096xf16>, %arg2: tensor<4096x4096xf16>) -> tensor<?x4096xf16> {
    %c0 = arith.constant 0 : index
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %dim = tensor.dim %arg0, %c0 : tensor<?x4096xf16>
    %0 = tensor.empty(%dim) : tensor<?x4096xf32>
    %1 = linalg.fill ins(%cst : f32) outs(%0 : tensor<?x4096xf32>) -> tensor<?x4096xf32>
    %2 = linalg.matmul ins(%arg0, %arg1 : tensor<?x4096xf16>, tensor<4096x4096xf16>) outs(%1 : tensor<?x4096xf32>) -> tensor<?x4096xf32>
    %3 = tensor.empty(%dim) : tensor<?x4096xf16>
    %4 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%2 : tensor<?x4096xf32>) outs(%3 : tensor<?x4096xf16>) {
    ^bb0(%in: f32, %out: f16):
      %14 = arith.truncf %in : f32 to f16
      linalg.yield %14 : f16
    } -> tensor<?x4096xf16>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<?x4096xf16>) outs(%0 : tensor<?x4096xf32>) {
    ^bb0(%in: f16, %out: f32):
      %14 = arith.extf %in : f16 to f32
      linalg.yield %14 : f32
    } -> tensor<?x4096xf32>
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%5 : tensor<?x4096xf32>) outs(%0 : tensor<?x4096xf32>) {
    ^bb0(%in: f32, %out: f32):
      %14 = arith.negf %in : f32
      %15 = math.exp %14 : f32
      %16 = arith.addf %15, %cst_0 : f32
      %17 = arith.divf %cst_0, %16 : f32
      linalg.yield %17 : f32
    } -> tensor<?x4096xf32>
    %dim_1 = tensor.dim %5, %c0 : tensor<?x4096xf32>
    %dim_2 = tensor.dim %6, %c0 : tensor<?x4096xf32>
    %7 = arith.cmpi eq, %dim_1, %dim_2 : index
    cf.assert %7, "mismatched size for broadcast"
    %8 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%5, %6 : tensor<?x4096xf32>, tensor<?x4096xf32>) outs(%0 : tensor<?x4096xf32>) {
    ^bb0(%in: f32, %in_5: f32, %out: f32):
      %14 = arith.mulf %in, %in_5 : f32
      linalg.yield %14 : f32
    } -> tensor<?x4096xf32>
    %9 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%8 : tensor<?x4096xf32>) outs(%3 : tensor<?x4096xf16>) {
    ^bb0(%in: f32, %out: f16):
      %14 = arith.truncf %in : f32 to f16
      linalg.yield %14 : f16
    } -> tensor<?x4096xf16>
    %10 = linalg.matmul ins(%arg0, %arg2 : tensor<?x4096xf16>, tensor<4096x4096xf16>) outs(%1 : tensor<?x4096xf32>) -> tensor<?x4096xf32>
    %11 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%10 : tensor<?x4096xf32>) outs(%3 : tensor<?x4096xf16>) {
    ^bb0(%in: f32, %out: f16):
      %14 = arith.truncf %in : f32 to f16
      linalg.yield %14 : f16
    } -> tensor<?x4096xf16>
    %dim_3 = tensor.dim %9, %c0 : tensor<?x4096xf16>
    %dim_4 = tensor.dim %11, %c0 : tensor<?x4096xf16>
    %12 = arith.cmpi eq, %dim_3, %dim_4 : index
    cf.assert %12, "mismatched size for broadcast"
    %13 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%9, %11 : tensor<?x4096xf16>, tensor<?x4096xf16>) outs(%3 : tensor<?x4096xf16>) {
    ^bb0(%in: f16, %in_5: f16, %out: f16):
      %14 = arith.mulf %in, %in_5 : f16
      linalg.yield %14 : f16
    } -> tensor<?x4096xf16>
    return %13 : tensor<?x4096xf16>
  }
}
