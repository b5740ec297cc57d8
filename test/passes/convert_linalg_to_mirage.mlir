// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(convert-linalg-to-mirage)' | FileCheck %s
// The pass emits no diagnostics: what it cannot express is left alone (checked by the FileCheck run),
// never an error. This run fails on any diagnostic, since the file expects none.
// RUN: mirage-opt %s -split-input-file -pass-pipeline='builtin.module(convert-linalg-to-mirage)' -verify-diagnostics | FileCheck %s

#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red3 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#drop3 = affine_map<(d0, d1, d2) -> (d0, d1)>

// A 2-D matmul into a zero fill: the fill and its empty disappear.
// CHECK-LABEL: func.func @matmul
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.matmul"(%arg0, %arg1) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT:    return %[[R]]
func.func @matmul(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %r = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x16xf32>) outs(%c : tensor<4x16xf32>) -> tensor<4x16xf32>
  return %r : tensor<4x16xf32>
}

// -----

// torch-mlir's f16 matmul: f16 operands, f32 zero-filled accumulator, then a truncf generic.
// CHECK-LABEL: func.func @matmul_f16
// CHECK-NEXT:    %[[M:.*]] = "mirage_kernel.matmul"(%arg0, %arg1) : (tensor<4x8xf16>, tensor<8x16xf16>) -> tensor<4x16xf32>
// CHECK-NEXT:    %[[C:.*]] = "mirage_kernel.cast"(%[[M]]) : (tensor<4x16xf32>) -> tensor<4x16xf16>
// CHECK-NEXT:    return %[[C]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @matmul_f16(%a: tensor<4x8xf16>, %b: tensor<8x16xf16>) -> tensor<4x16xf16> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %m = linalg.matmul ins(%a, %b : tensor<4x8xf16>, tensor<8x16xf16>) outs(%c : tensor<4x16xf32>) -> tensor<4x16xf32>
  %e16 = tensor.empty() : tensor<4x16xf16>
  %t = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%m : tensor<4x16xf32>) outs(%e16 : tensor<4x16xf16>) {
  ^bb0(%in: f32, %out: f16):
    %0 = arith.truncf %in : f32 to f16
    linalg.yield %0 : f16
  } -> tensor<4x16xf16>
  return %t : tensor<4x16xf16>
}

// -----

// CHECK-LABEL: func.func @batch_matmul
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.matmul"(%arg0, %arg1) : (tensor<2x4x8xf32>, tensor<2x8x16xf32>) -> tensor<2x4x16xf32>
// CHECK-NEXT:    return %[[R]]
func.func @batch_matmul(%a: tensor<2x4x8xf32>, %b: tensor<2x8x16xf32>) -> tensor<2x4x16xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<2x4x16xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  %r = linalg.batch_matmul ins(%a, %b : tensor<2x4x8xf32>, tensor<2x8x16xf32>) outs(%c : tensor<2x4x16xf32>) -> tensor<2x4x16xf32>
  return %r : tensor<2x4x16xf32>
}

// -----

// Non-zero inits are added: a constant fill through add_scalar, any other tensor through add.
// An explicit indexing_maps attribute with the default maps is a plain matmul.
// CHECK-LABEL: func.func @matmul_inits
// CHECK-NEXT:    %[[M1:.*]] = "mirage_kernel.matmul"(%arg0, %arg1)
// CHECK-NEXT:    %[[A1:.*]] = "mirage_kernel.add_scalar"(%[[M1]]) {scalar = 1.500000e+00 : f64}
// CHECK-NEXT:    %[[M2:.*]] = "mirage_kernel.matmul"(%arg0, %arg1)
// CHECK-NEXT:    %[[A2:.*]] = "mirage_kernel.add"(%[[M2]], %arg2)
// CHECK-NEXT:    return %[[A1]], %[[A2]]
#ma = affine_map<(d0, d1, d2) -> (d0, d2)>
#mb = affine_map<(d0, d1, d2) -> (d2, d1)>
#mc = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @matmul_inits(%a: tensor<4x8xf32>, %b: tensor<8x16xf32>, %c: tensor<4x16xf32>) -> (tensor<4x16xf32>, tensor<4x16xf32>) {
  %k = arith.constant 1.500000e+00 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %f = linalg.fill ins(%k : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %r1 = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x16xf32>) outs(%f : tensor<4x16xf32>) -> tensor<4x16xf32>
  %r2 = linalg.matmul indexing_maps = [#ma, #mb, #mc] ins(%a, %b : tensor<4x8xf32>, tensor<8x16xf32>) outs(%c : tensor<4x16xf32>) -> tensor<4x16xf32>
  return %r1, %r2 : tensor<4x16xf32>, tensor<4x16xf32>
}

// -----

// A transposed operand needs a transpose, which the opset lacks: left alone, fill included.
// CHECK-LABEL: func.func @matmul_transpose_b
// CHECK-NOT:     mirage_kernel
// CHECK:         linalg.fill
// CHECK-NEXT:    linalg.matmul indexing_maps
// CHECK-NOT:     mirage_kernel
// CHECK:         return
#ma = affine_map<(d0, d1, d2) -> (d0, d2)>
#mbt = affine_map<(d0, d1, d2) -> (d1, d2)>
#mc = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @matmul_transpose_b(%a: tensor<4x8xf32>, %b: tensor<16x8xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<4x16xf32>
  %c = linalg.fill ins(%zero : f32) outs(%e : tensor<4x16xf32>) -> tensor<4x16xf32>
  %r = linalg.matmul indexing_maps = [#ma, #mbt, #mc] ins(%a, %b : tensor<4x8xf32>, tensor<16x8xf32>) outs(%c : tensor<4x16xf32>) -> tensor<4x16xf32>
  return %r : tensor<4x16xf32>
}

// -----

// Sum over the last dim into a zero fill (torch-mlir's keepdim form), then a non-zero-init sum.
// CHECK-LABEL: func.func @sums
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.reduce_sum"(%arg0) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
// CHECK-NEXT:    %[[T:.*]] = "mirage_kernel.reduce_sum"(%arg0) {dim = 1 : i64}
// CHECK-NEXT:    %[[U:.*]] = "mirage_kernel.add_scalar"(%[[T]]) {scalar = 2.000000e+00 : f64}
// CHECK-NEXT:    return %[[S]], %[[U]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @sums(%x: tensor<4x64xf32>) -> (tensor<4x1xf32>, tensor<4x1xf32>) {
  %zero = arith.constant 0.000000e+00 : f32
  %two = arith.constant 2.000000e+00 : f32
  %e = tensor.empty() : tensor<4x1xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x1xf32>) -> tensor<4x1xf32>
  %s = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%z : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.addf %in, %out : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  %f = linalg.fill ins(%two : f32) outs(%e : tensor<4x1xf32>) -> tensor<4x1xf32>
  %t = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%f : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.addf %out, %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  return %s, %t : tensor<4x1xf32>, tensor<4x1xf32>
}

// -----

// Max with a -inf fill (maximumf) and with the lowest-f32 fill (maxnumf).
// CHECK-LABEL: func.func @maxes
// CHECK-NEXT:    %[[A:.*]] = "mirage_kernel.reduce_max"(%arg0) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
// CHECK-NEXT:    %[[B:.*]] = "mirage_kernel.reduce_max"(%arg0) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
// CHECK-NEXT:    return %[[A]], %[[B]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @maxes(%x: tensor<4x64xf32>) -> (tensor<4x1xf32>, tensor<4x1xf32>) {
  %ninf = arith.constant 0xFF800000 : f32
  %lowest = arith.constant -3.40282347E+38 : f32
  %e = tensor.empty() : tensor<4x1xf32>
  %f1 = linalg.fill ins(%ninf : f32) outs(%e : tensor<4x1xf32>) -> tensor<4x1xf32>
  %a = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%f1 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.maximumf %in, %out : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  %f2 = linalg.fill ins(%lowest : f32) outs(%e : tensor<4x1xf32>) -> tensor<4x1xf32>
  %b = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%f2 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.maxnumf %in, %out : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  return %a, %b : tensor<4x1xf32>, tensor<4x1xf32>
}

// -----

// torch.softmax's max: a rank-dropping reduction with a dead argmax result, restored to the keepdim
// shape by tensor.expand_shape: one reduce_max; the i64 fill is erased with the rest.
// CHECK-LABEL: func.func @softmax_max
// CHECK-NEXT:    %[[M:.*]] = "mirage_kernel.reduce_max"(%arg0) {dim = 2 : i64} : (tensor<2x16x64xf32>) -> tensor<2x16x1xf32>
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.sub"(%arg0, %[[M]]) : (tensor<2x16x64xf32>, tensor<2x16x1xf32>) -> tensor<2x16x64xf32>
// CHECK-NEXT:    return %[[S]]
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red3 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#drop3 = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @softmax_max(%x: tensor<2x16x64xf32>) -> tensor<2x16x64xf32> {
  %c0_i64 = arith.constant 0 : i64
  %ninf = arith.constant 0xFF800000 : f32
  %ei = tensor.empty() : tensor<2x16xi64>
  %fi = linalg.fill ins(%c0_i64 : i64) outs(%ei : tensor<2x16xi64>) -> tensor<2x16xi64>
  %ef = tensor.empty() : tensor<2x16xf32>
  %ff = linalg.fill ins(%ninf : f32) outs(%ef : tensor<2x16xf32>) -> tensor<2x16xf32>
  %m:2 = linalg.generic {indexing_maps = [#id3, #drop3, #drop3], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x16x64xf32>) outs(%ff, %fi : tensor<2x16xf32>, tensor<2x16xi64>) {
  ^bb0(%in: f32, %out: f32, %out_0: i64):
    %0 = linalg.index 2 : index
    %1 = arith.index_cast %0 : index to i64
    %2 = arith.maximumf %in, %out : f32
    %3 = arith.cmpf ogt, %in, %out : f32
    %4 = arith.select %3, %1, %out_0 : i64
    linalg.yield %2, %4 : f32, i64
  } -> (tensor<2x16xf32>, tensor<2x16xi64>)
  %expanded = tensor.expand_shape %m#0 [[0], [1, 2]] output_shape [2, 16, 1] : tensor<2x16xf32> into tensor<2x16x1xf32>
  %e = tensor.empty() : tensor<2x16x64xf32>
  %s = linalg.generic {indexing_maps = [#id3, #red3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %expanded : tensor<2x16x64xf32>, tensor<2x16x1xf32>) outs(%e : tensor<2x16x64xf32>) {
  ^bb0(%in: f32, %in_1: f32, %out: f32):
    %0 = arith.subf %in, %in_1 : f32
    linalg.yield %0 : f32
  } -> tensor<2x16x64xf32>
  return %s : tensor<2x16x64xf32>
}

// -----

// When the argmax result is used, the whole max generic stays; the subtraction still converts and
// reads the expanded max as a subgraph input.
// CHECK-LABEL: func.func @argmax_used
// CHECK:         %[[M:.*]]:2 = linalg.generic
// CHECK:         linalg.index 2
// CHECK:         %[[E:.*]] = tensor.expand_shape %[[M]]#0
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.sub"(%arg0, %[[E]])
// CHECK-NEXT:    return %[[S]], %[[M]]#1
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red3 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
#drop3 = affine_map<(d0, d1, d2) -> (d0, d1)>
func.func @argmax_used(%x: tensor<2x16x64xf32>) -> (tensor<2x16x64xf32>, tensor<2x16xi64>) {
  %c0_i64 = arith.constant 0 : i64
  %ninf = arith.constant 0xFF800000 : f32
  %ei = tensor.empty() : tensor<2x16xi64>
  %fi = linalg.fill ins(%c0_i64 : i64) outs(%ei : tensor<2x16xi64>) -> tensor<2x16xi64>
  %ef = tensor.empty() : tensor<2x16xf32>
  %ff = linalg.fill ins(%ninf : f32) outs(%ef : tensor<2x16xf32>) -> tensor<2x16xf32>
  %m:2 = linalg.generic {indexing_maps = [#id3, #drop3, #drop3], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x16x64xf32>) outs(%ff, %fi : tensor<2x16xf32>, tensor<2x16xi64>) {
  ^bb0(%in: f32, %out: f32, %out_0: i64):
    %0 = linalg.index 2 : index
    %1 = arith.index_cast %0 : index to i64
    %2 = arith.maximumf %in, %out : f32
    %3 = arith.cmpf ogt, %in, %out : f32
    %4 = arith.select %3, %1, %out_0 : i64
    linalg.yield %2, %4 : f32, i64
  } -> (tensor<2x16xf32>, tensor<2x16xi64>)
  %expanded = tensor.expand_shape %m#0 [[0], [1, 2]] output_shape [2, 16, 1] : tensor<2x16xf32> into tensor<2x16x1xf32>
  %e = tensor.empty() : tensor<2x16x64xf32>
  %s = linalg.generic {indexing_maps = [#id3, #red3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x, %expanded : tensor<2x16x64xf32>, tensor<2x16x1xf32>) outs(%e : tensor<2x16x64xf32>) {
  ^bb0(%in: f32, %in_1: f32, %out: f32):
    %0 = arith.subf %in, %in_1 : f32
    linalg.yield %0 : f32
  } -> tensor<2x16x64xf32>
  return %s, %m#1 : tensor<2x16x64xf32>, tensor<2x16xi64>
}

// -----

// One node per body op; broadcasting through the keepdim map (d0, d1) -> (d0, 0).
// CHECK-LABEL: func.func @elementwise
// CHECK-NEXT:    %[[A:.*]] = "mirage_kernel.add"(%arg0, %arg1) : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.sub"(%[[A]], %arg2) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[M:.*]] = "mirage_kernel.mul"(%[[S]], %arg1) : (tensor<4x64xf32>, tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[D:.*]] = "mirage_kernel.div"(%[[M]], %arg2) : (tensor<4x64xf32>, tensor<4x1xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[N:.*]] = "mirage_kernel.neg"(%[[D]])
// CHECK-NEXT:    %[[X:.*]] = "mirage_kernel.max"(%[[N]], %arg0)
// CHECK-NEXT:    %[[E:.*]] = "mirage_kernel.exp"(%[[X]])
// CHECK-NEXT:    %[[Q:.*]] = "mirage_kernel.sqrt"(%[[E]])
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.rsqrt"(%[[Q]])
// CHECK-NEXT:    %[[SQ:.*]] = "mirage_kernel.square"(%[[R]])
// CHECK-NEXT:    %[[RL:.*]] = "mirage_kernel.relu"(%[[SQ]])
// CHECK-NEXT:    return %[[RL]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @elementwise(%x: tensor<4x64xf32>, %y: tensor<4x64xf32>, %r: tensor<4x1xf32>) -> tensor<4x64xf32> {
  %c2 = arith.constant 2 : i64
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<4x64xf32>
  %a = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x, %y : tensor<4x64xf32>, tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.addf %in, %in_0 : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %b = linalg.generic {indexing_maps = [#id2, #red2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%a, %r, %y : tensor<4x64xf32>, tensor<4x1xf32>, tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_0: f32, %in_1: f32, %out: f32):
    %0 = arith.subf %in, %in_0 : f32
    %1 = arith.mulf %0, %in_1 : f32
    %2 = arith.divf %1, %in_0 : f32
    %3 = arith.negf %2 : f32
    linalg.yield %3 : f32
  } -> tensor<4x64xf32>
  %c = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%b, %x : tensor<4x64xf32>, tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.maximumf %in, %in_0 : f32
    %1 = math.exp %0 : f32
    %2 = math.sqrt %1 : f32
    %3 = math.rsqrt %2 : f32
    %4 = math.fpowi %3, %c2 : f32, i64
    %5 = arith.maximumf %4, %zero : f32
    linalg.yield %5 : f32
  } -> tensor<4x64xf32>
  return %c : tensor<4x64xf32>
}

// -----

// Scalar constants from above: x * c, x / c (times 1/c), c - x (neg, then + c), x + truncf(c64).
// CHECK-LABEL: func.func @scalars
// CHECK-NEXT:    %[[A:.*]] = "mirage_kernel.mul_scalar"(%arg0) {scalar = 1.250000e-01 : f64}
// CHECK-NEXT:    %[[B:.*]] = "mirage_kernel.mul_scalar"(%[[A]]) {scalar = 2.500000e-01 : f64}
// CHECK-NEXT:    %[[N:.*]] = "mirage_kernel.neg"(%[[B]])
// CHECK-NEXT:    %[[C:.*]] = "mirage_kernel.add_scalar"(%[[N]]) {scalar = 3.000000e+00 : f64}
// CHECK-NEXT:    %[[D:.*]] = "mirage_kernel.add_scalar"(%[[C]]) {scalar = 1.0132789611816406E-6 : f64} : (tensor<4x64xf16>) -> tensor<4x64xf16>
// CHECK-NEXT:    %[[E:.*]] = "mirage_kernel.add_scalar"(%[[D]]) {scalar = -5.000000e-01 : f64}
// CHECK-NEXT:    return %[[E]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @scalars(%x: tensor<4x64xf16>) -> tensor<4x64xf16> {
  %eighth = arith.constant 1.250000e-01 : f16
  %four = arith.constant 4.000000e+00 : f16
  %three = arith.constant 3.000000e+00 : f16
  %half = arith.constant 5.000000e-01 : f16
  %eps = arith.constant 9.9999999999999995E-7 : f64
  %e = tensor.empty() : tensor<4x64xf16>
  %r = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf16>) outs(%e : tensor<4x64xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.mulf %in, %eighth : f16
    %1 = arith.divf %0, %four : f16
    %2 = arith.subf %three, %1 : f16
    %3 = arith.truncf %eps : f64 to f16
    %4 = arith.addf %2, %3 : f16
    %5 = arith.subf %4, %half : f16
    linalg.yield %5 : f16
  } -> tensor<4x64xf16>
  return %r : tensor<4x64xf16>
}

// -----

// Tensor element-type changes are casts; a body that only widens to compute one op (extf, exp,
// truncf on f16 tensors) is that op in f16; one that computes two ops in f32 keeps its casts.
// CHECK-LABEL: func.func @casts
// CHECK-NEXT:    %[[E:.*]] = "mirage_kernel.exp"(%arg0) : (tensor<4x64xf16>) -> tensor<4x64xf16>
// CHECK-NEXT:    %[[C:.*]] = "mirage_kernel.cast"(%[[E]]) : (tensor<4x64xf16>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[N:.*]] = "mirage_kernel.neg"(%[[C]]) : (tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[D:.*]] = "mirage_kernel.cast"(%[[N]]) : (tensor<4x64xf32>) -> tensor<4x64xf16>
// CHECK-NEXT:    %[[W:.*]] = "mirage_kernel.cast"(%[[D]]) : (tensor<4x64xf16>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[X:.*]] = "mirage_kernel.exp"(%[[W]]) : (tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[Y:.*]] = "mirage_kernel.mul_scalar"(%[[X]]) {scalar = 3.000000e+00 : f64} : (tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[Z:.*]] = "mirage_kernel.cast"(%[[Y]]) : (tensor<4x64xf32>) -> tensor<4x64xf16>
// CHECK-NEXT:    return %[[Z]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @casts(%x: tensor<4x64xf16>) -> tensor<4x64xf16> {
  %three = arith.constant 3.000000e+00 : f32
  %e16 = tensor.empty() : tensor<4x64xf16>
  %e32 = tensor.empty() : tensor<4x64xf32>
  %a = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf16>) outs(%e16 : tensor<4x64xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.extf %in : f16 to f32
    %1 = math.exp %0 : f32
    %2 = arith.truncf %1 : f32 to f16
    linalg.yield %2 : f16
  } -> tensor<4x64xf16>
  %b = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<4x64xf16>) outs(%e32 : tensor<4x64xf32>) {
  ^bb0(%in: f16, %out: f32):
    %0 = arith.extf %in : f16 to f32
    %1 = arith.negf %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x64xf32>
  %c = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%b : tensor<4x64xf32>) outs(%e16 : tensor<4x64xf16>) {
  ^bb0(%in: f32, %out: f16):
    %0 = arith.truncf %in : f32 to f16
    linalg.yield %0 : f16
  } -> tensor<4x64xf16>
  %d = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%c : tensor<4x64xf16>) outs(%e16 : tensor<4x64xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.extf %in : f16 to f32
    %1 = math.exp %0 : f32
    %2 = arith.mulf %1, %three : f32
    %3 = arith.truncf %2 : f32 to f16
    linalg.yield %3 : f16
  } -> tensor<4x64xf16>
  return %d : tensor<4x64xf16>
}

// -----

// rms_norm as torch-mlir spells it (fpowi 2, sum, divf N, + truncf(eps : f64), rsqrt, broadcast mul).
// CHECK-LABEL: func.func @rms_norm_torch
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.rms_norm"(%arg0) {eps = 9.9999999747524271E-7 : f64} : (tensor<4x64xf32>) -> tensor<4x64xf32>
// CHECK-NEXT:    return %[[R]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @rms_norm_torch(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %c2_i64 = arith.constant 2 : i64
  %cst = arith.constant 0.000000e+00 : f32
  %cst_1 = arith.constant 9.9999999999999995E-7 : f64
  %cst_2 = arith.constant 6.400000e+01 : f32
  %0 = tensor.empty() : tensor<4x64xf32>
  %1 = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%0 : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %9 = math.fpowi %in, %c2_i64 : f32, i64
    linalg.yield %9 : f32
  } -> tensor<4x64xf32>
  %2 = tensor.empty() : tensor<4x1xf32>
  %3 = linalg.fill ins(%cst : f32) outs(%2 : tensor<4x1xf32>) -> tensor<4x1xf32>
  %4 = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%1 : tensor<4x64xf32>) outs(%3 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %9 = arith.addf %in, %out : f32
    linalg.yield %9 : f32
  } -> tensor<4x1xf32>
  %5 = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%4 : tensor<4x1xf32>) outs(%2 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %9 = arith.divf %in, %cst_2 : f32
    linalg.yield %9 : f32
  } -> tensor<4x1xf32>
  %6 = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%5 : tensor<4x1xf32>) outs(%2 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %9 = arith.truncf %cst_1 : f64 to f32
    %10 = arith.addf %in, %9 : f32
    linalg.yield %10 : f32
  } -> tensor<4x1xf32>
  %7 = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%6 : tensor<4x1xf32>) outs(%2 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %9 = math.rsqrt %in : f32
    linalg.yield %9 : f32
  } -> tensor<4x1xf32>
  %8 = linalg.generic {indexing_maps = [#id2, #red2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x, %7 : tensor<4x64xf32>, tensor<4x1xf32>) outs(%0 : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_3: f32, %out: f32):
    %9 = arith.mulf %in, %in_3 : f32
    linalg.yield %9 : f32
  } -> tensor<4x64xf32>
  return %8 : tensor<4x64xf32>
}

// -----

// rms_norm spelled by hand in f16: x*x and sum-of-squares in one generic, * (1/N), + eps, rsqrt
// times x on the left.
// CHECK-LABEL: func.func @rms_norm_fused_body
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.rms_norm"(%arg0) {eps = 1.0013580322265625E-5 : f64} : (tensor<2x3x64xf16>) -> tensor<2x3x64xf16>
// CHECK-NEXT:    return %[[R]]
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#red3 = affine_map<(d0, d1, d2) -> (d0, d1, 0)>
func.func @rms_norm_fused_body(%x: tensor<2x3x64xf16>) -> tensor<2x3x64xf16> {
  %zero = arith.constant 0.000000e+00 : f16
  %inv = arith.constant 1.562500e-02 : f16
  %eps = arith.constant 1.000000e-05 : f16
  %e1 = tensor.empty() : tensor<2x3x1xf16>
  %z = linalg.fill ins(%zero : f16) outs(%e1 : tensor<2x3x1xf16>) -> tensor<2x3x1xf16>
  %ss = linalg.generic {indexing_maps = [#id3, #red3], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x : tensor<2x3x64xf16>) outs(%z : tensor<2x3x1xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.mulf %in, %in : f16
    %1 = arith.addf %out, %0 : f16
    linalg.yield %1 : f16
  } -> tensor<2x3x1xf16>
  %r = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%ss : tensor<2x3x1xf16>) outs(%e1 : tensor<2x3x1xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.mulf %in, %inv : f16
    %1 = arith.addf %eps, %0 : f16
    %2 = math.rsqrt %1 : f16
    linalg.yield %2 : f16
  } -> tensor<2x3x1xf16>
  %e = tensor.empty() : tensor<2x3x64xf16>
  %y = linalg.generic {indexing_maps = [#red3, #id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]} ins(%r, %x : tensor<2x3x1xf16>, tensor<2x3x64xf16>) outs(%e : tensor<2x3x64xf16>) {
  ^bb0(%in: f16, %in_0: f16, %out: f16):
    %0 = arith.mulf %in, %in_0 : f16
    linalg.yield %0 : f16
  } -> tensor<2x3x64xf16>
  return %y : tensor<2x3x64xf16>
}

// -----

// The mean is also returned, so rms_norm does not apply (the mean idiom does: sum / N).
// CHECK-LABEL: func.func @rms_norm_mean_used
// CHECK-NEXT:    %[[Q:.*]] = "mirage_kernel.square"(%arg0)
// CHECK-NEXT:    %[[M:.*]] = "mirage_kernel.reduce_mean"(%[[Q]]) {dim = 1 : i64}
// CHECK-NEXT:    %[[A:.*]] = "mirage_kernel.add_scalar"(%[[M]])
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.rsqrt"(%[[A]])
// CHECK-NEXT:    %[[Y:.*]] = "mirage_kernel.mul"(%arg0, %[[R]])
// CHECK-NEXT:    return %[[Y]], %[[M]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @rms_norm_mean_used(%x: tensor<4x64xf32>) -> (tensor<4x64xf32>, tensor<4x1xf32>) {
  %zero = arith.constant 0.000000e+00 : f32
  %n = arith.constant 6.400000e+01 : f32
  %eps = arith.constant 1.000000e-05 : f32
  %e1 = tensor.empty() : tensor<4x1xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e1 : tensor<4x1xf32>) -> tensor<4x1xf32>
  %ss = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%z : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %in : f32
    %1 = arith.addf %0, %out : f32
    linalg.yield %1 : f32
  } -> tensor<4x1xf32>
  %m = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%ss : tensor<4x1xf32>) outs(%e1 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.divf %in, %n : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  %r = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%m : tensor<4x1xf32>) outs(%e1 : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.addf %in, %eps : f32
    %1 = math.rsqrt %0 : f32
    linalg.yield %1 : f32
  } -> tensor<4x1xf32>
  %e = tensor.empty() : tensor<4x64xf32>
  %y = linalg.generic {indexing_maps = [#id2, #red2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x, %r : tensor<4x64xf32>, tensor<4x1xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  return %y, %m : tensor<4x64xf32>, tensor<4x1xf32>
}

// -----

// mean = sum / N (torch-mlir divides by an element-type constant) becomes reduce_mean.
// CHECK-LABEL: func.func @mean
// CHECK-NEXT:    %[[M:.*]] = "mirage_kernel.reduce_mean"(%arg0) {dim = 1 : i64} : (tensor<4x64xf32>) -> tensor<4x1xf32>
// CHECK-NEXT:    return %[[M]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @mean(%x: tensor<4x64xf32>) -> tensor<4x1xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %n = arith.constant 6.400000e+01 : f32
  %e = tensor.empty() : tensor<4x1xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x1xf32>) -> tensor<4x1xf32>
  %s = linalg.generic {indexing_maps = [#id2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%z : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.addf %in, %out : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  %m = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%s : tensor<4x1xf32>) outs(%e : tensor<4x1xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.divf %in, %n : f32
    linalg.yield %0 : f32
  } -> tensor<4x1xf32>
  return %m : tensor<4x1xf32>
}

// -----

// A copy generic (yield of the input) is no op at all: its users read the input.
// CHECK-LABEL: func.func @copy
// CHECK-NEXT:    %[[E:.*]] = "mirage_kernel.exp"(%arg0)
// CHECK-NEXT:    return %[[E]], %arg0
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @copy(%x: tensor<4x64xf32>) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  %e = tensor.empty() : tensor<4x64xf32>
  %c = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<4x64xf32>
  %y = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%c : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = math.exp %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  return %y, %c : tensor<4x64xf32>, tensor<4x64xf32>
}

// -----

// silu in one body as x / (1 + exp(-x)).
// CHECK-LABEL: func.func @silu_div
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.silu"(%arg0) : (tensor<8x128xf16>) -> tensor<8x128xf16>
// CHECK-NEXT:    return %[[S]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @silu_div(%x: tensor<8x128xf16>) -> tensor<8x128xf16> {
  %one = arith.constant 1.000000e+00 : f16
  %e = tensor.empty() : tensor<8x128xf16>
  %y = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<8x128xf16>) outs(%e : tensor<8x128xf16>) {
  ^bb0(%in: f16, %out: f16):
    %0 = arith.negf %in : f16
    %1 = math.exp %0 : f16
    %2 = arith.addf %one, %1 : f16
    %3 = arith.divf %in, %2 : f16
    linalg.yield %3 : f16
  } -> tensor<8x128xf16>
  return %y : tensor<8x128xf16>
}

// -----

// silu as torch-mlir spells it: sigmoid (negf, exp, addf 1, divf 1 / s), then x * sigmoid.
// CHECK-LABEL: func.func @silu
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.silu"(%arg0) : (tensor<8x128xf32>) -> tensor<8x128xf32>
// CHECK-NEXT:    return %[[S]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @silu(%x: tensor<8x128xf32>) -> tensor<8x128xf32> {
  %one = arith.constant 1.000000e+00 : f32
  %e = tensor.empty() : tensor<8x128xf32>
  %s = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<8x128xf32>) outs(%e : tensor<8x128xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.negf %in : f32
    %1 = math.exp %0 : f32
    %2 = arith.addf %1, %one : f32
    %3 = arith.divf %one, %2 : f32
    linalg.yield %3 : f32
  } -> tensor<8x128xf32>
  %y = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x, %s : tensor<8x128xf32>, tensor<8x128xf32>) outs(%e : tensor<8x128xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    linalg.yield %0 : f32
  } -> tensor<8x128xf32>
  return %y : tensor<8x128xf32>
}

// -----

// A sigmoid that is also returned: no silu, and 1 / s has no opset form, so the sigmoid generic
// stays; the product converts and reads it.
// CHECK-LABEL: func.func @sigmoid_alone
// CHECK:         %[[S:.*]] = linalg.generic
// CHECK:         arith.divf
// CHECK:         %[[Y:.*]] = "mirage_kernel.mul"(%arg0, %[[S]])
// CHECK-NEXT:    return %[[Y]], %[[S]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @sigmoid_alone(%x: tensor<8x128xf32>) -> (tensor<8x128xf32>, tensor<8x128xf32>) {
  %one = arith.constant 1.000000e+00 : f32
  %e = tensor.empty() : tensor<8x128xf32>
  %s = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<8x128xf32>) outs(%e : tensor<8x128xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.negf %in : f32
    %1 = math.exp %0 : f32
    %2 = arith.addf %1, %one : f32
    %3 = arith.divf %one, %2 : f32
    linalg.yield %3 : f32
  } -> tensor<8x128xf32>
  %y = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x, %s : tensor<8x128xf32>, tensor<8x128xf32>) outs(%e : tensor<8x128xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    linalg.yield %0 : f32
  } -> tensor<8x128xf32>
  return %y, %s : tensor<8x128xf32>, tensor<8x128xf32>
}

// -----

// An unsupported op (a transpose generic) between two supported parts: two subgraphs, the first
// feeding the transpose, the second reading its result.
// CHECK-LABEL: func.func @split_by_transpose
// CHECK-NEXT:    %[[A:.*]] = "mirage_kernel.exp"(%arg0)
// CHECK-NEXT:    %[[E:.*]] = tensor.empty() : tensor<64x4xf32>
// CHECK-NEXT:    %[[T:.*]] = linalg.generic {{.*}} ins(%[[A]] : tensor<4x64xf32>) outs(%[[E]] : tensor<64x4xf32>)
// CHECK:         %[[B:.*]] = "mirage_kernel.neg"(%[[T]])
// CHECK-NEXT:    %[[C:.*]] = "mirage_kernel.add"(%[[B]], %arg1)
// CHECK-NEXT:    return %[[C]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#tr2 = affine_map<(d0, d1) -> (d1, d0)>
func.func @split_by_transpose(%x: tensor<4x64xf32>, %y: tensor<64x4xf32>) -> tensor<64x4xf32> {
  %e = tensor.empty() : tensor<4x64xf32>
  %a = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = math.exp %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %et = tensor.empty() : tensor<64x4xf32>
  %t = linalg.generic {indexing_maps = [#tr2, #id2], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<4x64xf32>) outs(%et : tensor<64x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<64x4xf32>
  %c = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%t, %y : tensor<64x4xf32>, tensor<64x4xf32>) outs(%et : tensor<64x4xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.negf %in : f32
    %1 = arith.addf %0, %in_0 : f32
    linalg.yield %1 : f32
  } -> tensor<64x4xf32>
  return %c : tensor<64x4xf32>
}

// -----

// c / x has no opset form outside an idiom, so its generic stays; exp(x) feeds it and, directly,
// the second subgraph (which reads the mirage value, not the erased linalg one).
// CHECK-LABEL: func.func @shared_across_subgraphs
// CHECK:         %[[A:.*]] = "mirage_kernel.exp"(%arg0)
// CHECK-NEXT:    %[[B:.*]] = linalg.generic {{.*}} ins(%[[A]] : tensor<4x64xf32>)
// CHECK:         arith.divf %cst, %in
// CHECK:         %[[C:.*]] = "mirage_kernel.mul"(%[[B]], %[[A]])
// CHECK-NEXT:    return %[[C]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @shared_across_subgraphs(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {
  %two = arith.constant 2.000000e+00 : f32
  %e = tensor.empty() : tensor<4x64xf32>
  %a = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = math.exp %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %b = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%a : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.divf %two, %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %c = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%b, %a : tensor<4x64xf32>, tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  return %c : tensor<4x64xf32>
}

// -----

// Reductions over a leading dim, with an f32 accumulator of f16 data (a cast), and a generic with
// two reduction results (sum of squares and max).
// CHECK-LABEL: func.func @more_reductions
// CHECK-NEXT:    %[[C0:.*]] = "mirage_kernel.cast"(%arg0) : (tensor<4x64xf16>) -> tensor<4x64xf32>
// CHECK-NEXT:    %[[S:.*]] = "mirage_kernel.reduce_sum"(%[[C0]]) {dim = 0 : i64} : (tensor<4x64xf32>) -> tensor<1x64xf32>
// CHECK-NEXT:    %[[C1:.*]] = "mirage_kernel.cast"(%arg0)
// CHECK-NEXT:    %[[Q:.*]] = "mirage_kernel.square"(%[[C1]])
// CHECK-NEXT:    %[[SS:.*]] = "mirage_kernel.reduce_sum"(%[[Q]]) {dim = 1 : i64}
// CHECK-NEXT:    %[[M:.*]] = "mirage_kernel.reduce_max"(%[[C1]]) {dim = 1 : i64}
// CHECK-NEXT:    return %[[S]], %[[SS]], %[[M]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#col = affine_map<(d0, d1) -> (0, d1)>
#red2 = affine_map<(d0, d1) -> (d0, 0)>
func.func @more_reductions(%x: tensor<4x64xf16>) -> (tensor<1x64xf32>, tensor<4x1xf32>, tensor<4x1xf32>) {
  %zero = arith.constant 0.000000e+00 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %e = tensor.empty() : tensor<1x64xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<1x64xf32>) -> tensor<1x64xf32>
  %s = linalg.generic {indexing_maps = [#id2, #col], iterator_types = ["reduction", "parallel"]} ins(%x : tensor<4x64xf16>) outs(%z : tensor<1x64xf32>) {
  ^bb0(%in: f16, %out: f32):
    %0 = arith.extf %in : f16 to f32
    %1 = arith.addf %0, %out : f32
    linalg.yield %1 : f32
  } -> tensor<1x64xf32>
  %e2 = tensor.empty() : tensor<4x1xf32>
  %z2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<4x1xf32>) -> tensor<4x1xf32>
  %m2 = linalg.fill ins(%ninf : f32) outs(%e2 : tensor<4x1xf32>) -> tensor<4x1xf32>
  %r:2 = linalg.generic {indexing_maps = [#id2, #red2, #red2], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf16>) outs(%z2, %m2 : tensor<4x1xf32>, tensor<4x1xf32>) {
  ^bb0(%in: f16, %a: f32, %b: f32):
    %0 = arith.extf %in : f16 to f32
    %1 = arith.mulf %0, %0 : f32
    %2 = arith.addf %1, %a : f32
    %3 = arith.maximumf %b, %0 : f32
    linalg.yield %2, %3 : f32, f32
  } -> (tensor<4x1xf32>, tensor<4x1xf32>)
  return %s, %r#0, %r#1 : tensor<1x64xf32>, tensor<4x1xf32>, tensor<4x1xf32>
}

// -----

// A rank-dropping reduction whose result is returned (not re-expanded) has no keepdim form: left alone.
// CHECK-LABEL: func.func @dropped_returned
// CHECK-NOT:     mirage_kernel
// CHECK:         linalg.fill
// CHECK-NEXT:    linalg.generic
// CHECK-NOT:     mirage_kernel
// CHECK:         return
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#drop = affine_map<(d0, d1) -> (d0)>
func.func @dropped_returned(%x: tensor<4x64xf32>) -> tensor<4xf32> {
  %zero = arith.constant 0.000000e+00 : f32
  %e = tensor.empty() : tensor<4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4xf32>) -> tensor<4xf32>
  %s = linalg.generic {indexing_maps = [#id2, #drop], iterator_types = ["parallel", "reduction"]} ins(%x : tensor<4x64xf32>) outs(%z : tensor<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.addf %in, %out : f32
    linalg.yield %0 : f32
  } -> tensor<4xf32>
  return %s : tensor<4xf32>
}

// -----

// One subgraph whose ops are interleaved with an op that reads its first part and with an
// independent unsupported producer of its second part: the reader moves after the subgraph.
// CHECK-LABEL: func.func @reorder
// CHECK:         %[[U1:.*]] = call @opaque(%arg1)
// CHECK-NEXT:    %[[A:.*]] = "mirage_kernel.exp"(%arg0)
// CHECK-NEXT:    %[[B:.*]] = "mirage_kernel.add"(%[[A]], %[[U1]])
// CHECK-NEXT:    %[[U0:.*]] = call @opaque(%[[A]])
// CHECK-NEXT:    return %[[B]], %[[U0]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func private @opaque(tensor<4x64xf32>) -> tensor<4x64xf32>
func.func @reorder(%x: tensor<4x64xf32>, %y: tensor<4x64xf32>) -> (tensor<4x64xf32>, tensor<4x64xf32>) {
  %e = tensor.empty() : tensor<4x64xf32>
  %a = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = math.exp %in : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %u0 = func.call @opaque(%a) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %u1 = func.call @opaque(%y) : (tensor<4x64xf32>) -> tensor<4x64xf32>
  %b = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%a, %u1 : tensor<4x64xf32>, tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.addf %in, %in_0 : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  return %b, %u0 : tensor<4x64xf32>, tensor<4x64xf32>
}

// -----

// Dynamic dims convert where nothing needs their size.
// CHECK-LABEL: func.func @dynamic
// CHECK-NEXT:    %[[R:.*]] = "mirage_kernel.exp"(%arg0) : (tensor<?x64xf32>) -> tensor<?x64xf32>
// CHECK-NEXT:    return %[[R]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @dynamic(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %c0 = arith.constant 0 : index
  %d = tensor.dim %x, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%d) : tensor<?x64xf32>
  %r = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<?x64xf32>) outs(%e : tensor<?x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = math.exp %in : f32
    linalg.yield %0 : f32
  } -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// -----

// Left alone, unchanged: integer tensors, element types outside the opset, linalg.index bodies,
// fpowi with exponent 3, reading an empty output, a constant broadcast to the result.
// CHECK-LABEL: func.func @untouched
// CHECK-NOT:     mirage_kernel
// CHECK:         arith.addi
// CHECK:         arith.addf {{.*}} : f8E4M3FN
// CHECK:         linalg.index
// CHECK:         math.fpowi
// CHECK:         arith.addf %in, %out
// CHECK:         linalg.yield %cst
// CHECK-NOT:     mirage_kernel
// CHECK:         return
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @untouched(%i: tensor<4x64xi32>, %q: tensor<4x64xf8E4M3FN>, %x: tensor<4x64xf32>)
    -> (tensor<4x64xi32>, tensor<4x64xf8E4M3FN>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>) {
  %c3 = arith.constant 3 : i64
  %one = arith.constant 1.000000e+00 : f32
  %ei = tensor.empty() : tensor<4x64xi32>
  %a = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%i, %i : tensor<4x64xi32>, tensor<4x64xi32>) outs(%ei : tensor<4x64xi32>) {
  ^bb0(%in: i32, %in_0: i32, %out: i32):
    %0 = arith.addi %in, %in_0 : i32
    linalg.yield %0 : i32
  } -> tensor<4x64xi32>
  %eq = tensor.empty() : tensor<4x64xf8E4M3FN>
  %b = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%q, %q : tensor<4x64xf8E4M3FN>, tensor<4x64xf8E4M3FN>) outs(%eq : tensor<4x64xf8E4M3FN>) {
  ^bb0(%in: f8E4M3FN, %in_0: f8E4M3FN, %out: f8E4M3FN):
    %0 = arith.addf %in, %in_0 : f8E4M3FN
    linalg.yield %0 : f8E4M3FN
  } -> tensor<4x64xf8E4M3FN>
  %e = tensor.empty() : tensor<4x64xf32>
  %c = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = linalg.index 1 : index
    %1 = arith.index_cast %0 : index to i64
    %2 = arith.sitofp %1 : i64 to f32
    %3 = arith.addf %in, %2 : f32
    linalg.yield %3 : f32
  } -> tensor<4x64xf32>
  %d = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = math.fpowi %in, %c3 : f32, i64
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %f = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.addf %in, %out : f32
    linalg.yield %0 : f32
  } -> tensor<4x64xf32>
  %g = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x64xf32>) outs(%e : tensor<4x64xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %one : f32
  } -> tensor<4x64xf32>
  return %a, %b, %c, %d, %f, %g : tensor<4x64xi32>, tensor<4x64xf8E4M3FN>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>, tensor<4x64xf32>
}

// -----

// A function with nothing to convert is printed exactly as it came.
// CHECK-LABEL: func.func @nothing
// CHECK-NEXT:    %[[E:.*]] = tensor.empty() : tensor<64x4xf32>
// CHECK-NEXT:    %[[T:.*]] = linalg.transpose ins(%arg0 : tensor<4x64xf32>) outs(%[[E]] : tensor<64x4xf32>) permutation = [1, 0]
// CHECK-NEXT:    return %[[T]]
func.func @nothing(%x: tensor<4x64xf32>) -> tensor<64x4xf32> {
  %e = tensor.empty() : tensor<64x4xf32>
  %t = linalg.transpose ins(%x : tensor<4x64xf32>) outs(%e : tensor<64x4xf32>) permutation = [1, 0]
  return %t : tensor<64x4xf32>
}
