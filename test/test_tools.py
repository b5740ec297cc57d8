"""Tests of mirage-opt and mirage-run that lit cannot easily make: no traceback on any bad input, the
--verify-diagnostics matcher on severities no op emits, pass failures and crashes, mirage-run's
output format and --save contents, and that the dialect lit tests cover every verifier message."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mirage_mlir.diagnostics import Diagnostic
from mirage_mlir.tools import driver, mirage_opt, mirage_run

ROOT = Path(__file__).resolve().parent.parent
DIALECT_TESTS = sorted((ROOT / "test" / "dialects").glob("*.mlir"))

VALID = """func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> (tensor<4x16xf32>, tensor<4x1xf32>) {
  %m = "mirage_kernel.matmul"(%x, %w) : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
  %r = "mirage_kernel.reduce_sum"(%m) {dim = 1} : (tensor<4x16xf32>) -> tensor<4x1xf32>
  return %m, %r : tensor<4x16xf32>, tensor<4x1xf32>
}
"""


def run_tool(tool: str, *args: str, stdin: str | bytes | None = None, env=None) -> subprocess.CompletedProcess:
    module = {"mirage-opt": "mirage_mlir.tools.mirage_opt", "mirage-run": "mirage_mlir.tools.mirage_run"}[tool]
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run([sys.executable, "-m", module, *args], input=data, capture_output=True, env=env, timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def graph_def(body: str, attrs: str = "", grid="1, 1, 1", forloop=1) -> str:
    """A function holding one graph_def over a 4x16 tensor whose block graph is `body`."""
    return f"""func.func @f(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {{
  %o = "mirage_kernel.graph_def"(%x) ({{
  ^bb0(%bx: tensor<4x16xf32>):
{body}
  }}) {{grid_dim = array<i64: {grid}>, block_dim = array<i64: 128, 1, 1>, forloop_range = {forloop},
       operandSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>, resultSegmentSizes = array<i32: 1, 0, 0, 0, 0, 0, 0, 0>{attrs}}}
     : (tensor<4x16xf32>) -> tensor<4x16xf32>
  return %o : tensor<4x16xf32>
}}
"""


def accumulator_graph(accum_attrs: str) -> str:
    return graph_def(f"""    %t = "mirage_block.input_iterator"(%bx) {{imap = array<i64: -1, -1, -1>, fmap = -1}} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %a = "mirage_block.accum_sum"(%t) {{{accum_attrs}}} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    %s = "mirage_block.output_saver"(%a) {{omap = array<i64: -1, -1, -1>}} : (tensor<4x16xf32>) -> tensor<4x16xf32>
    gpu.yield %s : tensor<4x16xf32>""")


# Inputs that must fail with a diagnostic, exit code 1 and no traceback.
BAD_TEXTS = {
    "truncated": "func.func @f( {",
    "stray brace": "}",
    "dangling value": "%x = ",
    "nested garbage": "module { module { ((((",
    "binary": b"\x00\xff\xfe garbage \x80",
    "not utf-8": b"func.func @f() { return } \xff\xfe",
    "not utf-8 in a string": b'func.func @f() attributes {s = "// \xff"} { return }',
    "unknown dialect": "func.func @f() {\n  %x = foo.bar : i32\n  return\n}",
    "unknown mirage op": '"mirage_kernel.nope"() : () -> ()',
    "no operands": 'func.func @f() {\n  %e = "mirage_kernel.exp"() : () -> tensor<4xf32>\n  return\n}',
    "attribute kind": 'func.func @f(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {\n  %r = "mirage_kernel.reduce_sum"(%a) {dim = "one"} : (tensor<4x8xf32>) -> tensor<4x1xf32>\n  return %r : tensor<4x1xf32>\n}',
    "huge dim": 'func.func @f(%a: tensor<4x8xf32>) -> tensor<4x1xf32> {\n  %r = "mirage_kernel.reduce_sum"(%a) {dim = 99999999999} : (tensor<4x8xf32>) -> tensor<4x1xf32>\n  return %r : tensor<4x1xf32>\n}',
    "i32 maps": graph_def('    %t = "mirage_block.input_iterator"(%bx) {imap = array<i32: -1, -1, -1>, fmap = -1} : (tensor<4x16xf32>) -> tensor<4x16xf32>\n    gpu.yield %t : tensor<4x16xf32>'),
    "float reduce_dim": accumulator_graph("reduce_dim = 1.5"),
    "string reduce_dim": accumulator_graph('reduce_dim = "x"'),
    "huge grid": graph_def("    gpu.yield %bx : tensor<4x16xf32>", grid="9223372036854775807, 1, 1"),
    "negative grid": graph_def("    gpu.yield %bx : tensor<4x16xf32>", grid="-1, -1, -1"),
    "grid beyond CUDA's": graph_def("    gpu.yield %bx : tensor<4x16xf32>", grid="1, 70000, 1"),
    "huge loop": graph_def("    gpu.yield %bx : tensor<4x16xf32>", forloop=2**31),
    "empty region": graph_def(""),
    "block op outside": 'func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n  %r = "mirage_block.exp"(%a) : (tensor<4xf32>) -> tensor<4xf32>\n  return %r : tensor<4xf32>\n}',
    "bad split chunk": "func.func @f() { return }\n// -----\nfunc.func @g( {\n",
}

BAD_ARGS = {
    "missing file": ["/nonexistent/input.mlir"],
    "directory": [str(ROOT / "test")],
    "unknown flag": ["--no-such-flag"],
    "unknown pass": ["-p", "builtin.module(no-such-pass)"],
    "bad upstream option": ["-p", "builtin.module(canonicalize{nope=1})"],
    "bad mirage option": ["-p", "builtin.module(convert-linalg-to-mirage{x})"],
    "unbalanced pipeline": ["-p", "builtin.module(cse"],
    "bad verify level": ["--verify-diagnostics=sometimes"],
    "unwritable output": ["-o", "/nonexistent/dir/out.mlir"],
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_input_gives_a_diagnostic(name):
    proc = run_tool("mirage-opt", "-", "-split-input-file", stdin=BAD_TEXTS[name])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


# graph_verify.py does not check the kind of the optional attributes (reduce_dim, eps) that IRDL
# cannot declare: the driver turns its crash into an internal error. Strict, so a fix shows up.
@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_input_is_not_an_internal_error(name):
    proc = run_tool("mirage-opt", "-", "-split-input-file", stdin=BAD_TEXTS[name])
    assert "internal error" not in proc.stderr


@pytest.mark.parametrize("name", sorted(BAD_ARGS))
def test_bad_arguments_give_a_diagnostic(name):
    proc = run_tool("mirage-opt", *BAD_ARGS[name], stdin=VALID)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_diagnostics_point_at_the_source():
    proc = run_tool("mirage-opt", "-", stdin="func.func @f() {\n  %x = foo.bar : i32\n  return\n}\n")
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("<stdin>:2:8: error: Dialect `foo' not found")
    assert lines[1] == "  %x = foo.bar : i32"
    assert lines[2] == "       ^"


@pytest.mark.parametrize("args,stdin", [
    (["/nonexistent.mlir"], None),
    (["-", "--entry", "nope"], VALID),
    (["-", "--dims", "x=1"], VALID),
    (["-", "--inputs", "/nonexistent.npz"], VALID),
    (["-", "--inputs", "/dev/null"], VALID),
    (["-", "--seed", "-5"], VALID),
    (["-", "--seed", "x"], VALID),
    (["-", "--dims", "arg0.0=4"], VALID),  # a static dim
    (["-", "--dims", "arg7.0=4"], VALID),  # no such argument
    (["-", "--dims", "arg0.9=4"], VALID),  # no such dim
    (["-"], "func.func @f(%a: tensor<?xf32>) -> tensor<?x4xf32> {\n  %c3 = arith.constant 3 : index\n"
            "  %e = tensor.expand_shape %a [[0, 1]] output_shape [%c3, 4] : tensor<?xf32> into tensor<?x4xf32>\n"
            "  return %e : tensor<?x4xf32>\n}"),  # 3 x 4 elements from the default 8
    (["-"], "func.func @f( {"),
    (["-"], "func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n  %e = math.cbrt %a : tensor<4xf32>\n  return %e : tensor<4xf32>\n}"),
    (["-"], 'func.func @f(%a: tensor<4xf32>) -> tensor<4xf32> {\n  %r = "mirage_block.exp"(%a) : (tensor<4xf32>) -> tensor<4xf32>\n  return %r : tensor<4xf32>\n}'),
    (["-"], "module {}"),
    (["-"], "func.func @empty() {\n  return\n}"),
    (["-", "--no-such-flag"], VALID),
])
def test_mirage_run_bad_input(args, stdin):
    proc = run_tool("mirage-run", *args, stdin=stdin)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mirage_run_bad_input_is_located_and_plain():
    """The regressions of issue #10's fuzzing: no internal error, no raw NumPy message."""
    for args, stdin, message in [
        (["-", "--dims", "arg0.0=4"], VALID, "<stdin>:1:1: error: --dims arg0.0: dim 0 of argument 0 is static (4)"),
        (["-", "--seed", "-5"], VALID, "a seed is a non-negative integer, got -5"),
        (["-"], "func.func @f(%a: tensor<?xf32>) -> tensor<?x4xf32> {\n  %c3 = arith.constant 3 : index\n"
                "  %e = tensor.expand_shape %a [[0, 1]] output_shape [%c3, 4] : tensor<?xf32> into tensor<?x4xf32>\n"
                "  return %e : tensor<?x4xf32>\n}", "the output shape (3, 4) does not hold the source's 8 elements"),
    ]:
        proc = run_tool("mirage-run", *args, stdin=stdin)
        assert message in proc.stderr and "internal error" not in proc.stderr, proc.stderr


def test_a_mirage_op_in_custom_form_is_located():
    """MLIR's parser fails silently on an IRDL dialect's op in custom form (found by fuzzing: exit
    code 1 and no message); the tools locate it."""
    text = 'func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n  %0 = mirage_kernel.exp""(%x) : (tensor<4xf32>) -> tensor<4xf32>\n  return %0 : tensor<4xf32>\n}\n'
    for tool in ("mirage-opt", "mirage-run"):
        proc = run_tool(tool, "-", stdin=text)
        assert proc.returncode == 1
        assert "<stdin>:2:8: error: 'mirage_kernel.exp' in custom form" in proc.stderr, proc.stderr


def test_bytes_that_are_not_utf8_are_accepted_in_comments():
    proc = run_tool("mirage-opt", "-", stdin=b"// caf\xe9 \xff\nfunc.func @f() {\n  return // \xfe\n}\n")
    assert proc.returncode == 0 and "func.func @f()" in proc.stdout, proc.stderr
    proc = run_tool("mirage-opt", "-", stdin=b"func.func @f() {\n  return \xff\n}\n")
    assert proc.returncode == 1 and "<stdin>:2:10: error: invalid UTF-8 byte 0xff" in proc.stderr, proc.stderr


def test_regions_nested_deeper_than_python_recursion():
    depth = 1000
    text = ("func.func @main(%x: f32) -> f32 {\n" + "".join(f"%r{i} = scf.execute_region -> f32 {{\n" for i in range(depth))
            + "scf.yield %x : f32\n" + "".join(f"}}\nscf.yield %r{i} : f32\n" for i in reversed(range(1, depth)))
            + "}\nreturn %r0 : f32\n}\n")
    proc = run_tool("mirage-opt", "-", "-p", "builtin.module(convert-linalg-to-mirage)", stdin=text)
    assert proc.returncode == 0 and proc.stdout.count("scf.execute_region") == depth, proc.stderr


@pytest.mark.parametrize("text, reason", [
    ('func.func @f(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {\n  %0 = "mirage_kernel.exp"(%x) : '
     "(tensor<?x64xf32>) -> tensor<?x64xf32>\n  return %0 : tensor<?x64xf32>\n}",
     "a tensor has a dynamic dim (mirage-specialize-dims compiles it at static sizes)"),
    ('func.func @f(%x: tensor<4x64xf32>) -> tensor<4x64xf32> {\n  %0 = "mirage_kernel.add_scalar"(%x) '
     "{scalar = 0xFF800000 : f32} : (tensor<4x64xf32>) -> tensor<4x64xf32>\n  return %0 : tensor<4x64xf32>\n}",
     "'add_scalar' has the non-finite constant scalar = -inf"),
])
def test_groups_the_search_cannot_take_are_kept_with_a_remark(text, reason):
    proc = run_tool("mirage-opt", "-", "-p", "builtin.module(mirage-superoptimize{cache=false})", stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert f"remark: mirage-superoptimize: not searched: {reason}; kept the original" in proc.stderr
    assert "graph_def" not in proc.stdout


def test_mirage_run_inputs_of_the_wrong_shape(tmp_path):
    np.savez(tmp_path / "in.npz", input_0=np.zeros((2, 2), np.float32), input_1=np.zeros((8, 16), np.float32))
    proc = run_tool("mirage-run", "-", "--inputs", str(tmp_path / "in.npz"), stdin=VALID)
    assert proc.returncode == 1
    assert "<stdin>:1:1: error:" in proc.stderr and "Traceback" not in proc.stderr


# -- mirage-run's output and --save ---------------------------------------------------------------

_SUMMARY = re.compile(r"output (\d+): shape=\[([\d, ]*)\] dtype=(\w+) min=(\S+) max=(\S+) mean=(\S+) abs_sum=(\S+)$")


def test_mirage_run_output_and_save(tmp_path):
    src = tmp_path / "prog.mlir"
    src.write_text(VALID)
    out = tmp_path / "run.npz"
    proc = run_tool("mirage-run", str(src), "--seed", "7", "--save", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "@main: 2 input(s) (seed 7), 2 output(s)"
    saved = np.load(out)
    assert sorted(saved.files) == ["input_0", "input_1", "output_0", "output_1"]
    assert saved["input_0"].shape == (4, 8) and saved["input_1"].shape == (8, 16)
    np.testing.assert_allclose(saved["output_0"], saved["input_0"] @ saved["input_1"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved["output_1"], saved["output_0"].sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-4)
    for i, line in enumerate(lines[1:]):
        m = _SUMMARY.match(line)
        assert m, line
        value = saved[f"output_{i}"]
        assert int(m[1]) == i
        assert [int(d) for d in m[2].split(", ")] == list(value.shape)
        assert m[3] == str(value.dtype)
        x = value.astype(np.float64)
        for text, expected in zip(m.groups()[3:], (x.min(), x.max(), x.mean(), np.abs(x).sum())):
            assert float(text) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_mirage_run_inputs_are_the_interpreters():
    """The inputs mirage-run makes are those interpret(seed=N) makes itself, so both agree."""
    import mlir.ir as ir

    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.interpreter import interpret

    ctx = make_context()
    with ctx:
        module = parse_module(VALID, ctx)
        func = module.body.operations[0]
        inputs = mirage_run.make_inputs(func, {}, seed=3)
        ours = interpret(module, entry="main", inputs=inputs)
        theirs = interpret(module, entry="main", seed=3)
    assert isinstance(module, ir.Module)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_summary_of_special_values():
    assert mirage_run.summary(0, np.zeros((0, 3), np.float32)) == "output 0: shape=[0, 3] dtype=float32 (empty)"
    line = mirage_run.summary(1, np.array([1.0, np.inf, np.nan], np.float32))
    assert line.startswith("output 1: shape=[3] dtype=float32") and line.endswith("nonfinite=2")


# -- the --verify-diagnostics matcher -------------------------------------------------------------

def verifier(text: str, only_expected: bool = False):
    printed = []
    printer = driver.Printer(driver.Source("t.mlir", text))
    printer.print = printed.append
    return driver.DiagnosticVerifier(driver.Chunk(text, 1), printer, only_expected), printed


def test_verifier_matches_every_severity():
    v, printed = verifier("op // expected-warning {{careful}}\n"
                          "op // expected-remark {{note this}}\n"
                          "// expected-note @-2 {{see}}\n"
                          "// expected-error @unknown {{nowhere}}\n")
    v.process(Diagnostic("warning", "be careful here", "-", 1, 1, [Diagnostic("note", "see there", "-", 1, 4)]), "t.mlir")
    v.process(Diagnostic("remark", "please note this", "-", 2, 1), "t.mlir")
    v.process(Diagnostic("error", "from nowhere"), "t.mlir")
    assert v.finish(), printed
    assert not printed


def test_verifier_reports_mismatches():
    v, printed = verifier("op // expected-remark {{hello}}\n")
    v.process(Diagnostic("warning", "hello", "-", 1, 1), "t.mlir")  # severity differs
    v.process(Diagnostic("error", "elsewhere", "other.mlir", 1, 1), "t.mlir")  # a file we did not read
    v.process(Diagnostic("error", "no location"), "t.mlir")  # nothing expects @unknown
    assert not v.finish()
    messages = [d.message for d in printed]
    assert messages == ["'warning' diagnostic emitted when expecting a 'remark'",
                        "unexpected error: elsewhere", "unexpected error: no location",
                        'expected remark "hello" was not produced']
    assert (printed[0].line, printed[0].col) == (1, 7)  # at the designator


def test_verifier_only_expected_ignores_the_unexpected():
    v, printed = verifier("op // expected-error {{known}}\n", only_expected=True)
    v.process(Diagnostic("error", "known", "-", 1, 1), "t.mlir")
    v.process(Diagnostic("error", "surprise", "-", 1, 1), "t.mlir")
    assert v.finish() and not printed


def test_verifier_one_designator_matches_repeated_diagnostics():
    # As in MLIR: a designator that matched keeps matching identical diagnostics on its line.
    v, printed = verifier("op // expected-error {{twice}}\n")
    for _ in range(2):
        v.process(Diagnostic("error", "twice", "-", 1, 1), "t.mlir")
    assert v.finish() and not printed


def test_verifier_ignores_see_current_operation_notes():
    v, printed = verifier("op // expected-error {{bad}}\n")
    v.process(Diagnostic("error", "bad op", "-", 1, 1, [Diagnostic("note", "see current operation: %0 = ...", "-", 1, 1)]), "t.mlir")
    assert v.finish() and not printed


def test_verifier_regex_and_offsets():
    v, printed = verifier("// expected-error-re @+2 {{value {{[0-9]+}} of [a]}}\n\nop\nop\n// expected-error @-1 {{[a]}}\n")
    v.process(Diagnostic("error", "value 42 of [a]", "-", 3, 1), "t.mlir")
    v.process(Diagnostic("error", "literal [a] here", "-", 4, 1), "t.mlir")
    assert v.finish(), printed


def test_split_input_keeps_whole_file_lines():
    text = "a\n// -----\nb\nc\n// ------\nd\n// -----\ne\n"
    chunks = driver.split_input(text, True)
    assert [(c.first_line, c.text) for c in chunks] == [(1, "a\n"), (2, "\nb\nc\n// ------\nd\n"), (7, "\ne\n")]
    for chunk in chunks:
        for offset, line in enumerate(chunk.text.split("\n")[1:], start=1):
            if line:
                assert text.split("\n")[chunk.first_line - 1 + offset] == line


def test_single_dash_long_options():
    parser = mirage_opt.build_parser()
    argv = driver.normalize_argv(["-split-input-file", "-o", "-", "-", "-p", "-x", "-mlir-timing"], parser)
    assert argv == ["--split-input-file", "-o", "-", "-", "-p", "-x", "--mlir-timing"]


# -- mirage passes in the driver: failures and crashes --------------------------------------------

@pytest.fixture
def fake_passes(monkeypatch):
    """Registers test passes: one failing with a PassError and a note, one crashing, one breaking
    the mirage IR (which the verifier run after every mirage pass must catch)."""
    from mirage_mlir.passes import PASSES, Pass, PassError

    def first_op(module):
        return module.regions[0].blocks[0].operations[0].operation

    class Fails(Pass):
        NAME = "test-fails"
        SUMMARY = "fails"

        def run(self, module):
            func = first_op(module)
            raise PassError(func, "this function is not welcome", [(module, "said the test")])

    class Crashes(Pass):
        NAME = "test-crashes"
        SUMMARY = "crashes"

        def run(self, module):
            raise ZeroDivisionError("a bug")

    class Breaks(Pass):
        NAME = "test-breaks"
        SUMMARY = "breaks"

        def run(self, module):
            import mlir.ir as ir

            func = first_op(module)
            entry = func.regions[0].blocks[0]
            with ir.InsertionPoint.at_block_begin(entry), func.location:
                ir.Operation.create("mirage_block.exp", results=[entry.arguments[0].type], operands=[entry.arguments[0]])

    module = types.ModuleType("mirage_mlir.passes._test_fakes")
    module.Fails, module.Crashes, module.Breaks = Fails, Crashes, Breaks
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for name, cls in (("test-fails", "Fails"), ("test-crashes", "Crashes"), ("test-breaks", "Breaks")):
        monkeypatch.setitem(PASSES, name, f"_test_fakes:{cls}")


def run_opt_in_process(capsys, monkeypatch, text: str, *args: str):
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(text))
    code = mirage_opt.main(["-", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_pass_error_is_a_diagnostic_with_notes(fake_passes, capsys, monkeypatch):
    code, out, err = run_opt_in_process(capsys, monkeypatch, VALID, "-p", "builtin.module(test-fails)")
    assert code == 1 and out == ""
    assert err.startswith("<stdin>:1:1: error: this function is not welcome\nfunc.func @main")
    assert err.endswith("\nnote: said the test\n")  # at the module: no line to show


def test_pass_crash_is_an_internal_error(fake_passes, capsys, monkeypatch):
    monkeypatch.delenv("MIRAGE_DEBUG", raising=False)
    code, _, err = run_opt_in_process(capsys, monkeypatch, VALID, "-p", "builtin.module(cse,test-crashes)")
    assert code == 1
    assert "error: internal error in pass 'test-crashes': ZeroDivisionError: a bug" in err
    assert "Traceback" not in err
    monkeypatch.setenv("MIRAGE_DEBUG", "1")
    code, _, err = run_opt_in_process(capsys, monkeypatch, VALID, "-p", "builtin.module(test-crashes)")
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_mirage_ir_is_verified_after_each_mirage_pass(fake_passes, capsys, monkeypatch):
    code, _, err = run_opt_in_process(capsys, monkeypatch, VALID, "-p", "builtin.module(test-breaks,canonicalize)")
    assert code == 1
    assert "<stdin>:1:1: error: 'mirage_block.exp' may only appear inside 'mirage_kernel.graph_def'" in err


def test_pass_errors_under_verify_diagnostics(fake_passes, capsys, monkeypatch):
    text = "// expected-error @+1 {{not welcome}}\n" + VALID
    code, _, err = run_opt_in_process(capsys, monkeypatch, text, "-p", "builtin.module(test-fails)", "-verify-diagnostics")
    # The note is at the implicit module (line 0), which no designator can name: mlir-opt does the same.
    assert code == 1 and "unexpected note: said the test" in err


def test_listing_survives_a_broken_pass(monkeypatch, capsys):
    from mirage_mlir.passes import PASSES

    monkeypatch.setitem(PASSES, "test-missing", "no_such_module:Nothing")
    assert mirage_opt.main(["--list-passes"]) == 0
    assert "test-missing" in capsys.readouterr().out
    assert mirage_opt.main(["-", "-p", "builtin.module(test-missing)"]) == 1
    assert "mirage pass 'test-missing' cannot be loaded" in capsys.readouterr().err


# -- the dialect lit tests cover every message of the verifiers -----------------------------------

VERIFIER_SOURCES = ["mirage_mlir/graph_verify.py", "mirage_mlir/bridge.py", "mirage_mlir/dialect_verifier.py",
                    "mirage_mlir/shapes.py"]

# (file, text in the message template) -> why MLIR input cannot produce it.
UNREACHABLE = {
    ("bridge.py", "needs attribute"): "IRDL requires grid_dim, block_dim and forloop_range first",
    ("bridge.py", "must end in gpu.yield"): "a block needs a terminator, and any other terminator is "
                                            "rejected first as an op that cannot appear in the graph",
    ("graph_verify.py", "is not defined before use"): "SSA dominance orders values; the bridge numbers them",
    ("graph_verify.py", "is not a value of the graph"): "the bridge numbers yielded values from SSA values",
    ("graph_verify.py", "needs attribute"): "IRDL requires the opset attributes first",
    ("graph_verify.py", "has one result, got"): "IRDL fixes one result",
    ("graph_verify.py", "takes {arity} operand(s)"): "IRDL fixes the operand count",
    ("graph_verify.py", "is not a kernel-graph op"): "the bridge reads only mirage_kernel ops there",
    ("graph_verify.py", "is not a block-graph op"): "the bridge reads only mirage_block ops there (no rms_norm)",
    ("graph_verify.py", "is not a thread-graph op"): "the bridge reads only mirage_thread ops there",
    ("graph_verify.py", "graph_def needs a block graph"): "IRDL requires the region; the bridge reads it",
    ("shapes.py", "expects {arity} operand(s)"): "IRDL fixes the operand count",
}


def _template(node: ast.AST, source: str):
    """A regex for the messages an f-string (or string) can produce, and its source text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value), node.value
    if isinstance(node, ast.JoinedStr):
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".*" for v in node.values]
        return "".join(parts), ast.get_source_segment(source, node)
    return None


def message_templates():
    """(file, regex, source text) of every message the verifier sources can raise or emit."""
    out = []
    for rel in VERIFIER_SOURCES:
        source = (ROOT / rel).read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            arg = {("error", 2): 1, ("BridgeError", 2): 1, ("emit_error", 1): 0, ("ShapeError", 1): 0,
                   ("_dim_join", 3): 2}.get((name, len(node.args)))
            if arg is None:
                continue
            found = _template(node.args[arg], source)
            if found:
                regex, text = found
                if name == "_dim_join":  # the `what` of "what: a vs b"
                    regex, text = regex + r": .* vs .*", text
                out.append((Path(rel).name, regex, text))
    return out


def produced_messages() -> list[str]:
    """Every diagnostic the dialect lit tests make mirage-opt emit (parsing and verifying each chunk)."""
    import mlir.ir as ir

    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.diagnostics import DiagnosticCollector
    from mirage_mlir.dialect_verifier import verify_dialects

    messages = []
    for path in DIALECT_TESTS:
        for chunk in driver.split_input(path.read_text(), True):
            ctx = make_context()
            with ctx, DiagnosticCollector(ctx) as collector:
                try:
                    verify_dialects(parse_module(chunk.text, ctx, chunk.first_line).operation)
                except ir.MLIRError:
                    pass
                messages += [d.message for d in collector.diagnostics]
    return messages


def test_dialect_tests_cover_every_verifier_message():
    messages = produced_messages()
    templates = message_templates()
    assert len(templates) > 40  # the extraction still finds the messages
    used_unreachable, missing = set(), []
    for file, regex, text in templates:
        skip = [key for key in UNREACHABLE if key[0] == file and key[1] in text]
        if skip:
            used_unreachable.update(skip)
            continue
        if not any(re.search(regex, m, re.S) for m in messages):
            missing.append(f"{file}: {text}")
    assert not missing, "messages without a test in test/dialects/*.mlir:\n" + "\n".join(missing)
    assert used_unreachable == set(UNREACHABLE), "stale UNREACHABLE entries"


RELU_AS_MAX = """
func.func @relu_as_max(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = "mirage_kernel.mul_scalar"(%x) {scalar = 0.0 : f64, mirage.reference = @relu_ref} : (tensor<4x8xf32>) -> tensor<4x8xf32>
  %1 = "mirage_kernel.max"(%x, %0) {mirage.reference = @relu_ref} : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}
func.func private @relu_ref(%x: tensor<4x8xf32>) -> tensor<4x8xf32> attributes {mirage.reference_function} {
  %0 = "mirage_kernel.relu"(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
  return %0 : tensor<4x8xf32>
}
"""


def test_verify_accepts_a_float_only_check_only_when_asked():
    """relu as max(x, 0): the finite fields cannot decide a max whose value is the output; by
    default that is an error, with accept-float-only=true the float check's verdict, named so."""
    refused = run_tool("mirage-opt", "-", "-p", "builtin.module(mirage-verify)", stdin=RELU_AS_MAX)
    assert refused.returncode == 1 and "cannot be verified" in refused.stderr and "Traceback" not in refused.stderr
    accepted = run_tool("mirage-opt", "-", "-p", "builtin.module(mirage-verify{accept-float-only=true})",
                        stdin=RELU_AS_MAX)
    assert accepted.returncode == 0, accepted.stderr
    assert 'mirage.verified = "float-only (max relative error 0): the value of a max reaches output #0' in accepted.stdout
