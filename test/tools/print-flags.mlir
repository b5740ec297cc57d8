// Output flags: -o FILE, stdin as -, --mlir-print-op-generic, --mlir-print-debuginfo (with the real
// file name in locations).
// RUN: mirage-opt %s -o %t && FileCheck %s --check-prefix=CUSTOM < %t
// RUN: mirage-opt - < %s | FileCheck %s --check-prefix=CUSTOM
// RUN: mirage-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC
// RUN: mirage-opt %s -mlir-print-debuginfo | FileCheck %s --check-prefix=DEBUG

// CUSTOM: func.func @f(%arg0: tensor<4xf32>) -> tensor<4xf32> {
// CUSTOM-NEXT: %0 = "mirage_kernel.exp"(%arg0) : (tensor<4xf32>) -> tensor<4xf32>
// CUSTOM-NEXT: return %0 : tensor<4xf32>
// GENERIC: "func.func"() <{function_type = (tensor<4xf32>) -> tensor<4xf32>, sym_name = "f"}> ({
// GENERIC: "func.return"(%0) : (tensor<4xf32>) -> ()
// DEBUG: "mirage_kernel.exp"(%arg0) : (tensor<4xf32>) -> tensor<4xf32> loc([[LOC:#loc[0-9]*]])
// DEBUG: [[LOC]] = loc("{{.*}}print-flags.mlir":[[@LINE+2]]:8)
func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {
  %e = "mirage_kernel.exp"(%a) : (tensor<4xf32>) -> tensor<4xf32>
  return %e : tensor<4xf32>
}

