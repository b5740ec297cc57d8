// Flags that print information and exit 0 without reading input.
// RUN: mirage-opt --help | FileCheck %s --check-prefix=HELP
// HELP: usage: mirage-opt [options] [input file | -]
// HELP: --pass-pipeline PIPELINE, -p PIPELINE
// HELP: --split-input-file
// HELP: --verify-diagnostics
// HELP: --mlir-print-ir-after-all
// HELP: --mlir-timing
// HELP: --emit-irdl
// HELP: Mirage passes
// HELP: convert-linalg-to-mirage {{ *}}- Convert supported linalg-on-tensors subgraphs into mirage_kernel ops
// RUN: mirage-opt --list-passes | FileCheck %s --check-prefix=PASSES
// PASSES: Mirage passes
// PASSES: convert-linalg-to-mirage {{ *}}- {{.+}}
// PASSES: Upstream MLIR passes
// RUN: mirage-opt --show-dialects | FileCheck %s --check-prefix=DIALECTS
// DIALECTS: Available Dialects: {{.*}}arith,{{.*}}func,gpu,{{.*}}linalg,{{.*}}mirage_block,mirage_kernel,mirage_thread,{{.*}}tensor
// RUN: mirage-opt --version | FileCheck %s --check-prefix=VERSION
// VERSION: mirage-opt (mirage-mlir {{[0-9.]+}})
// VERSION-NEXT: MLIR Python bindings 22.
// RUN: mirage-opt --emit-irdl | FileCheck %s --check-prefix=IRDL
// IRDL: irdl.dialect @mirage_kernel {
// IRDL: irdl.operation @graph_def {
// IRDL: irdl.dialect @mirage_block {
// IRDL: irdl.operation @input_iterator {
// IRDL: irdl.dialect @mirage_thread {
