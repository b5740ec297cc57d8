// Bad pipelines are reported at their column in the pipeline text, before any input is read; exit 1.
// RUN: not mirage-opt %s -p 'builtin.module(func.func(canonicalize),no-such-pass)' 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// UNKNOWN: <pass-pipeline>:1:40: error: 'no-such-pass' does not refer to a registered pass or pass pipeline
// UNKNOWN-NEXT: builtin.module(func.func(canonicalize),no-such-pass)
// UNKNOWN-NEXT: {{^}}                                       ^
// RUN: not mirage-opt %s -p 'builtin.module(cse,func.func(cse,no-such-pass))' 2>&1 | FileCheck %s --check-prefix=NESTED
// NESTED: <pass-pipeline>:1:34: error: 'no-such-pass' does not refer to a registered pass or pass pipeline
// RUN: not mirage-opt %s -p 'builtin.module(canonicalize{bogus=1})' 2>&1 | FileCheck %s --check-prefix=UPOPT
// UPOPT: <pass-pipeline>:1:16: error: no such option bogus
// RUN: not mirage-opt %s -p 'builtin.module(convert-linalg-to-mirage{bogus=1})' 2>&1 | FileCheck %s --check-prefix=MIRAGEOPT
// MIRAGEOPT: <pass-pipeline>:1:16: error: 'convert-linalg-to-mirage' has no option 'bogus'
// RUN: not mirage-opt %s -p 'builtin.module(convert-linalg-to-mirage(cse))' 2>&1 | FileCheck %s --check-prefix=MIRAGENEST
// MIRAGENEST: <pass-pipeline>:1:40: error: 'convert-linalg-to-mirage' is a mirage pass and takes no nested pipeline
// RUN: not mirage-opt %s -p 'builtin.module(func.func(cse,convert-linalg-to-mirage))' 2>&1 | FileCheck %s --check-prefix=MIRAGEINSIDE
// MIRAGEINSIDE: <pass-pipeline>:1:30: error: mirage pass 'convert-linalg-to-mirage' runs on the module: name it at the top level of the pipeline, not inside a nested pipeline
// RUN: not mirage-opt %s -p 'builtin.module(canonicalize' 2>&1 | FileCheck %s --check-prefix=UNBALANCED
// UNBALANCED: <pass-pipeline>:1:27: error: missing closing bracket for '('
// RUN: not mirage-opt %s -p 'builtin.module(cse))' 2>&1 | FileCheck %s --check-prefix=EXTRA
// EXTRA: <pass-pipeline>:1:20: error: unbalanced ')'
// RUN: not mirage-opt %s -p 'cse,,canonicalize' 2>&1 | FileCheck %s --check-prefix=EMPTY
// EMPTY: <pass-pipeline>:1:5: error: expected a pass name
// The input is not read when the pipeline is bad.
// RUN: not mirage-opt %s.does-not-exist -p 'builtin.module(no-such-pass)' 2>&1 | FileCheck %s --check-prefix=FIRST
// FIRST: error: 'no-such-pass' does not refer to a registered pass or pass pipeline
// FIRST-NOT: cannot open input file

func.func @f() {
  return
}
