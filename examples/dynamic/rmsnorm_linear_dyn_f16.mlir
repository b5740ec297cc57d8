// rmsnorm_linear (dynamic batch, f16): O = rms_norm(X) @ W; rms_norm(x) = x * rsqrt(mean(x^2, -1) + 1e-6); shapes X [?,4096], W [4096,6144]; written by hand after torch-mlir's dynamic-shape output (torch.export Dim: tensor<?x..>, tensor.dim, tensor.empty(%dim), cf.assert broadcast checks; ../shared/PLATFORM.md), as torch-mlir is not installed here.
#map = affine_map<(d0, d1) -> (d0, d1)>
#map1 = affine_map<(d0, d1) -> (d0, 0)>
module {
  func.func @main(%arg0: tensor<?x4096xf16>, %arg1: tensor<4096x6144xf16>) -> tensor<?x6144xf16> {
    %c0 = arith.constant 0 : index
    %c2_i64 = arith.constant 2 : i64
    %cst = arith.constant 0.000000e+00 : f16
    %cst_0 = arith.constant 0.000000e+00 : f32
    %cst_1 = arith.constant 9.9999999999999995E-7 : f64
    %cst_2 = arith.constant 4.096000e+03 : f16
    %dim = tensor.dim %arg0, %c0 : tensor<?x4096xf16>
    %0 = tensor.empty(%dim) : tensor<?x4096xf16>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%arg0 : tensor<?x4096xf16>) outs(%0 : tensor<?x4096xf16>) {
    ^bb0(%in: f16, %out: f16):
      %15 = math.fpowi %in, %c2_i64 : f16, i64
      linalg.yield %15 : f16
    } -> tensor<?x4096xf16>
    %2 = tensor.empty(%dim) : tensor<?x1xf16>
    %3 = linalg.fill ins(%cst : f16) outs(%2 : tensor<?x1xf16>) -> tensor<?x1xf16>
    %4 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "reduction"]} ins(%1 : tensor<?x4096xf16>) outs(%3 : tensor<?x1xf16>) {
    ^bb0(%in: f16, %out: f16):
      %15 = arith.addf %in, %out : f16
      linalg.yield %15 : f16
    } -> tensor<?x1xf16>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<?x1xf16>) outs(%2 : tensor<?x1xf16>) {
    ^bb0(%in: f16, %out: f16):
      %15 = arith.divf %in, %cst_2 : f16
      linalg.yield %15 : f16
    } -> tensor<?x1xf16>
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%5 : tensor<?x1xf16>) outs(%2 : tensor<?x1xf16>) {
    ^bb0(%in: f16, %out: f16):
      %15 = arith.truncf %cst_1 : f64 to f16
      %16 = arith.addf %in, %15 : f16
      linalg.yield %16 : f16
    } -> tensor<?x1xf16>
    %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%6 : tensor<?x1xf16>) outs(%2 : tensor<?x1xf16>) {
    ^bb0(%in: f16, %out: f16):
      %15 = math.rsqrt %in : f16
      linalg.yield %15 : f16
    } -> tensor<?x1xf16>
    %dim_3 = tensor.dim %arg0, %c0 : tensor<?x4096xf16>
    %dim_4 = tensor.dim %7, %c0 : tensor<?x1xf16>
    %8 = arith.cmpi eq, %dim_3, %dim_4 : index
    cf.assert %8, "mismatched size for broadcast"
    %9 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel"]} ins(%arg0, %7 : tensor<?x4096xf16>, tensor<?x1xf16>) outs(%0 : tensor<?x4096xf16>) {
    ^bb0(%in: f16, %in_5: f16, %out: f16):
      %15 = arith.mulf %in, %in_5 : f16
      linalg.yield %15 : f16
    } -> tensor<?x4096xf16>
    %10 = tensor.empty(%dim) : tensor<?x6144xf32>
    %11 = linalg.fill ins(%cst_0 : f32) outs(%10 : tensor<?x6144xf32>) -> tensor<?x6144xf32>
    %12 = linalg.matmul ins(%9, %arg1 : tensor<?x4096xf16>, tensor<4096x6144xf16>) outs(%11 : tensor<?x6144xf32>) -> tensor<?x6144xf32>
    %13 = tensor.empty(%dim) : tensor<?x6144xf16>
    %14 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%12 : tensor<?x6144xf32>) outs(%13 : tensor<?x6144xf16>) {
    ^bb0(%in: f32, %out: f16):
      %15 = arith.truncf %in : f32 to f16
      linalg.yield %15 : f16
    } -> tensor<?x6144xf16>
    return %14 : tensor<?x6144xf16>
  }
}
