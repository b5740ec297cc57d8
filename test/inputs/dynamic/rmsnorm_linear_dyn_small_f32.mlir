// rmsnorm_linear (dynamic batch, f32): O = rms_norm(X) @ W; rms_norm(x) = x * rsqrt(mean(x^2, -1) + 1e-6); shapes X [?,64], W [64,128]; written by hand after torch-mlir's dynamic-shape output (torch.export Dim: tensor<?x..>, tensor.dim, tensor.empty(%dim), cf.assert broadcast checks; ../shared/PLATFORM.md), as torch-mlir is not installed here.
#map = affine_map<(d0, d1) -> (d0, d1)>
#map1 = affine_map<(d0, d1) -> (d0, 0)>
module {
  func.func @main(%arg0: tensor<?x64xf32>, %arg1: tensor<64x128xf32>) -> tensor<?x128xf32> {
    %c0 = arith.constant 0 : index
    %c2_i64 = arith.constant 2 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 9.9999999999999995E-7 : f64
    %cst_1 = arith.constant 6.400000e+01 : f32
    %dim = tensor.dim %arg0, %c0 : tensor<?x64xf32>
    %0 = tensor.empty(%dim) : tensor<?x64xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%arg0 : tensor<?x64xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %out: f32):
      %13 = math.fpowi %in, %c2_i64 : f32, i64
      linalg.yield %13 : f32
    } -> tensor<?x64xf32>
    %2 = tensor.empty(%dim) : tensor<?x1xf32>
    %3 = linalg.fill ins(%cst : f32) outs(%2 : tensor<?x1xf32>) -> tensor<?x1xf32>
    %4 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "reduction"]} ins(%1 : tensor<?x64xf32>) outs(%3 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %13 = arith.addf %in, %out : f32
      linalg.yield %13 : f32
    } -> tensor<?x1xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %13 = arith.divf %in, %cst_1 : f32
      linalg.yield %13 : f32
    } -> tensor<?x1xf32>
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%5 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %13 = arith.truncf %cst_0 : f64 to f32
      %14 = arith.addf %in, %13 : f32
      linalg.yield %14 : f32
    } -> tensor<?x1xf32>
    %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%6 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %13 = math.rsqrt %in : f32
      linalg.yield %13 : f32
    } -> tensor<?x1xf32>
    %dim_2 = tensor.dim %arg0, %c0 : tensor<?x64xf32>
    %dim_3 = tensor.dim %7, %c0 : tensor<?x1xf32>
    %8 = arith.cmpi eq, %dim_2, %dim_3 : index
    cf.assert %8, "mismatched size for broadcast"
    %9 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel"]} ins(%arg0, %7 : tensor<?x64xf32>, tensor<?x1xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %in_4: f32, %out: f32):
      %13 = arith.mulf %in, %in_4 : f32
      linalg.yield %13 : f32
    } -> tensor<?x64xf32>
    %10 = tensor.empty(%dim) : tensor<?x128xf32>
    %11 = linalg.fill ins(%cst : f32) outs(%10 : tensor<?x128xf32>) -> tensor<?x128xf32>
    %12 = linalg.matmul ins(%9, %arg1 : tensor<?x64xf32>, tensor<64x128xf32>) outs(%11 : tensor<?x128xf32>) -> tensor<?x128xf32>
    return %12 : tensor<?x128xf32>
  }
}
