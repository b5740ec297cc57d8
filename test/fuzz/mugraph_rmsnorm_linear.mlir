// rmsnorm_linear (small, f32) after convert-linalg-to-mirage and mirage-superoptimize: a mu-graph with a
// graph_def, its block graph and thread graph; the fuzz tests mutate it.
module {
  func.func @main(%arg0: tensor<4x64xf32>, %arg1: tensor<64x128xf32>) -> tensor<4x128xf32> {
    %0 = "mirage_kernel.graph_def"(%arg0, %arg1) ({
    ^bb0(%arg2: tensor<4x64xf32>, %arg3: tensor<64x128xf32>):
      %1 = "mirage_block.input_iterator"(%arg2) {fmap = 1 : i64, imap = array<i64: -1, -1, -1>} : (tensor<4x64xf32>) -> tensor<4x16xf32>
      %2 = "mirage_block.input_iterator"(%arg3) {fmap = 0 : i64, imap = array<i64: 1, -1, -1>} : (tensor<64x128xf32>) -> tensor<16x16xf32>
      %3 = "mirage_block.accum_rms"(%1) {eps = 9.9999999747524271E-7 : f64, reduce_dim = 1 : i64} : (tensor<4x16xf32>) -> tensor<4x1xf32>
      %4 = "mirage_block.matmul"(%1, %2) : (tensor<4x16xf32>, tensor<16x16xf32>) -> tensor<4x16xf32>
      %5 = "mirage_block.accum_sum"(%4) : (tensor<4x16xf32>) -> tensor<4x16xf32>
      %6 = "mirage_block.div"(%5, %3) : (tensor<4x16xf32>, tensor<4x1xf32>) -> tensor<4x16xf32>
      %7 = "mirage_block.output_saver"(%6) {omap = array<i64: 1, -1, -1>} : (tensor<4x16xf32>) -> tensor<4x128xf32>
      gpu.yield %7 : tensor<4x128xf32>
    }) {block_dim = array<i64: 128, 1, 1>, forloop_range = 4 : i64, grid_dim = array<i64: 8, 1, 1>, mirage.reference = @main__mirage_ref0, operandSegmentSizes = array<i32: 1, 1, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>} : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
    return %0 : tensor<4x128xf32>
  }
  func.func private @main__mirage_ref0(%arg0: tensor<4x64xf32>, %arg1: tensor<64x128xf32>) -> tensor<4x128xf32> attributes {mirage.reference_function} {
    %0 = "mirage_kernel.rms_norm"(%arg0) {eps = 9.9999999747524271E-7 : f64} : (tensor<4x64xf32>) -> tensor<4x64xf32>
    %1 = "mirage_kernel.matmul"(%0, %arg1) : (tensor<4x64xf32>, tensor<64x128xf32>) -> tensor<4x128xf32>
    return %1 : tensor<4x128xf32>
  }
}
