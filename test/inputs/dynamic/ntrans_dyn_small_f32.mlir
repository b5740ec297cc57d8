// ntrans (dynamic batch, f32): O = rms_norm(H + alpha * (rms_norm(X) - H)); rms_norm(x) = x * rsqrt(mean(x^2, -1) + 1e-6); shapes H [?,64], X [?,64], alpha [?,64]; written by hand after torch-mlir's dynamic-shape output (torch.export Dim: tensor<?x..>, tensor.dim, tensor.empty(%dim), cf.assert broadcast checks; ../shared/PLATFORM.md), as torch-mlir is not installed here.
#map = affine_map<(d0, d1) -> (d0, d1)>
#map1 = affine_map<(d0, d1) -> (d0, 0)>
module {
  func.func @main(%arg0: tensor<?x64xf32>, %arg1: tensor<?x64xf32>, %arg2: tensor<?x64xf32>) -> tensor<?x64xf32> {
    %c0 = arith.constant 0 : index
    %c2_i64 = arith.constant 2 : i64
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 9.9999999999999995E-7 : f64
    %cst_1 = arith.constant 6.400000e+01 : f32
    %dim = tensor.dim %arg1, %c0 : tensor<?x64xf32>
    %0 = tensor.empty(%dim) : tensor<?x64xf32>
    %1 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%arg1 : tensor<?x64xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = math.fpowi %in, %c2_i64 : f32, i64
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    %2 = tensor.empty(%dim) : tensor<?x1xf32>
    %3 = linalg.fill ins(%cst : f32) outs(%2 : tensor<?x1xf32>) -> tensor<?x1xf32>
    %4 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "reduction"]} ins(%1 : tensor<?x64xf32>) outs(%3 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.addf %in, %out : f32
      linalg.yield %23 : f32
    } -> tensor<?x1xf32>
    %5 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.divf %in, %cst_1 : f32
      linalg.yield %23 : f32
    } -> tensor<?x1xf32>
    %6 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%5 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.truncf %cst_0 : f64 to f32
      %24 = arith.addf %in, %23 : f32
      linalg.yield %24 : f32
    } -> tensor<?x1xf32>
    %7 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%6 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = math.rsqrt %in : f32
      linalg.yield %23 : f32
    } -> tensor<?x1xf32>
    %dim_2 = tensor.dim %arg1, %c0 : tensor<?x64xf32>
    %dim_3 = tensor.dim %7, %c0 : tensor<?x1xf32>
    %8 = arith.cmpi eq, %dim_2, %dim_3 : index
    cf.assert %8, "mismatched size for broadcast"
    %9 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel"]} ins(%arg1, %7 : tensor<?x64xf32>, tensor<?x1xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %in_12: f32, %out: f32):
      %23 = arith.mulf %in, %in_12 : f32
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    %dim_4 = tensor.dim %9, %c0 : tensor<?x64xf32>
    %dim_5 = tensor.dim %arg0, %c0 : tensor<?x64xf32>
    %10 = arith.cmpi eq, %dim_4, %dim_5 : index
    cf.assert %10, "mismatched size for broadcast"
    %11 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%9, %arg0 : tensor<?x64xf32>, tensor<?x64xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %in_12: f32, %out: f32):
      %23 = arith.subf %in, %in_12 : f32
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    %dim_6 = tensor.dim %arg2, %c0 : tensor<?x64xf32>
    %dim_7 = tensor.dim %11, %c0 : tensor<?x64xf32>
    %12 = arith.cmpi eq, %dim_6, %dim_7 : index
    cf.assert %12, "mismatched size for broadcast"
    %13 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%arg2, %11 : tensor<?x64xf32>, tensor<?x64xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %in_12: f32, %out: f32):
      %23 = arith.mulf %in, %in_12 : f32
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    %dim_8 = tensor.dim %arg0, %c0 : tensor<?x64xf32>
    %dim_9 = tensor.dim %13, %c0 : tensor<?x64xf32>
    %14 = arith.cmpi eq, %dim_8, %dim_9 : index
    cf.assert %14, "mismatched size for broadcast"
    %15 = linalg.generic {indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]} ins(%arg0, %13 : tensor<?x64xf32>, tensor<?x64xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %in_12: f32, %out: f32):
      %23 = arith.addf %in, %in_12 : f32
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    %16 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%15 : tensor<?x64xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = math.fpowi %in, %c2_i64 : f32, i64
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    %17 = linalg.generic {indexing_maps = [#map, #map1], iterator_types = ["parallel", "reduction"]} ins(%16 : tensor<?x64xf32>) outs(%3 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.addf %in, %out : f32
      linalg.yield %23 : f32
    } -> tensor<?x1xf32>
    %18 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%17 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.divf %in, %cst_1 : f32
      linalg.yield %23 : f32
    } -> tensor<?x1xf32>
    %19 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%18 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = arith.truncf %cst_0 : f64 to f32
      %24 = arith.addf %in, %23 : f32
      linalg.yield %24 : f32
    } -> tensor<?x1xf32>
    %20 = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel", "parallel"]} ins(%19 : tensor<?x1xf32>) outs(%2 : tensor<?x1xf32>) {
    ^bb0(%in: f32, %out: f32):
      %23 = math.rsqrt %in : f32
      linalg.yield %23 : f32
    } -> tensor<?x1xf32>
    %dim_10 = tensor.dim %15, %c0 : tensor<?x64xf32>
    %dim_11 = tensor.dim %20, %c0 : tensor<?x1xf32>
    %21 = arith.cmpi eq, %dim_10, %dim_11 : index
    cf.assert %21, "mismatched size for broadcast"
    %22 = linalg.generic {indexing_maps = [#map, #map1, #map], iterator_types = ["parallel", "parallel"]} ins(%15, %20 : tensor<?x64xf32>, tensor<?x1xf32>) outs(%0 : tensor<?x64xf32>) {
    ^bb0(%in: f32, %in_12: f32, %out: f32):
      %23 = arith.mulf %in, %in_12 : f32
      linalg.yield %23 : f32
    } -> tensor<?x64xf32>
    return %22 : tensor<?x64xf32>
  }
}
