"""Diagnostics in MLIR's format: `file:line:col: error: message`, the source line and a caret.

A DiagnosticCollector attached to a context receives everything MLIR and our passes emit, so the
tools print them uniformly and decide the exit code; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field

import mlir.ir as ir

_FILE_LOC = re.compile(r'loc\("(?P<file>[^"]*)":(?P<line>\d+):(?P<col>\d+)')


@dataclass
class Diagnostic:
    severity: str  # error | warning | note | remark
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    notes: list[Diagnostic] = field(default_factory=list)

    @staticmethod
    def from_mlir(diag) -> Diagnostic:
        severity = str(diag.severity).rsplit(".", 1)[-1].lower()
        file, line, col = location_parts(diag.location)
        return Diagnostic(severity, diag.message, file, line, col,
                          [Diagnostic.from_mlir(n) for n in diag.notes])


def location_parts(location) -> tuple[str | None, int | None, int | None]:
    """(file, line, col) of the first file location inside `location` (fused, named, call sites)."""
    match = _FILE_LOC.search(str(location))
    if not match:
        return None, None, None
    return match["file"], int(match["line"]), int(match["col"])


_ACTIVE: list[DiagnosticCollector] = []  # collectors attached now, innermost last


def remark(location, message: str, severity: str = "remark") -> None:
    """A remark (or warning) at `location` from Python code (the bindings can emit only errors), to
    the innermost attached collector. With none attached (a pass run from a user's script) a remark
    is dropped and a warning goes to Python's warnings."""
    if _ACTIVE:
        _ACTIVE[-1].diagnostics.append(Diagnostic(severity, message, *location_parts(location)))
    elif severity == "warning":
        warnings.warn(message, stacklevel=2)


_CUSTOM_FORM = re.compile(r'(?<!["\w.])(mirage_(?:kernel|block|thread)\.\w+)')


@contextlib.contextmanager
def unexplained_parse_failure(text: str):
    """Around a parse: when it fails and MLIR reported nothing (the parser of an IRDL dialect's op in
    custom form fails silently), an error for the innermost collector: at the first mirage op written
    in custom form, else for the whole input."""
    before = len(_ACTIVE[-1].diagnostics) if _ACTIVE else 0
    try:
        yield
    except ir.MLIRError as e:
        if _ACTIVE and not e.error_diagnostics and len(_ACTIVE[-1].diagnostics) == before:
            _ACTIVE[-1].diagnostics.append(_explain(text))
        raise


def _explain(text: str) -> Diagnostic:
    for number, line in enumerate(text.split("\n"), start=1):
        m = _CUSTOM_FORM.search(line.split("//", 1)[0])
        if m:
            return Diagnostic("error", f"'{m[1]}' in custom form: the mirage dialects have only the generic form "
                                       f"(\"{m[1]}\"(...) : ...)", "-", number, m.start(1) + 1)
    return Diagnostic("error", "the input does not parse (MLIR reported no location)")


class DiagnosticCollector:
    """Collects the diagnostics of a context while attached (use as a context manager), and the
    remarks of our passes (`remark`)."""

    def __init__(self, context: ir.Context):
        self.context = context
        self.diagnostics: list[Diagnostic] = []
        self._handle = None

    def __enter__(self) -> DiagnosticCollector:
        self.context.emit_error_diagnostics = True
        self._handle = self.context.attach_diagnostic_handler(self._on_diagnostic)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.detach()
        # the handle keeps the callback (this collector) alive from native code, where Python's
        # cycle collector cannot see: dropped, or every collector and its context leak (~2.5 MB a
        # tool run in a long-lived process: benchmarks/fuzz.py grew to 16 GB)
        self._handle = None
        _ACTIVE.remove(self)

    def _on_diagnostic(self, diag) -> bool:
        self.diagnostics.append(Diagnostic.from_mlir(diag))
        return True

    def add_parse_error(self, error: ir.MLIRError) -> None:
        """Diagnostics carried by an MLIRError (parse and pass-manager failures)."""
        for diag in error.error_diagnostics:
            self.diagnostics.append(Diagnostic.from_mlir(diag))

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def take(self) -> list[Diagnostic]:
        taken, self.diagnostics = self.diagnostics, []
        return taken


def format_diagnostic(diag: Diagnostic, filename: str, source_lines: list[str]) -> str:
    """MLIR's text form; the buffer name "-" of parsed strings becomes `filename`."""
    out = []
    for d in [diag, *diag.notes]:
        if d.line is None:
            out.append(f"{filename}: {d.severity}: {d.message}" if d is diag else f"note: {d.message}")
            continue
        file = filename if d.file in ("-", "", None) else d.file
        out.append(f"{file}:{d.line}:{d.col}: {d.severity}: {d.message}")
        if 1 <= d.line <= len(source_lines) and file == filename:
            out.append(source_lines[d.line - 1].rstrip("\n"))
            out.append(" " * max(d.col - 1, 0) + "^")
    return "\n".join(out)
