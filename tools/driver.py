"""Shared machinery of the command-line tools (mirage-opt, mirage-run).

Everything a user can get wrong ends as an MLIR-style diagnostic (`file:line:col: error: ...`, the
source line and a caret) and exit code 1; Python tracebacks are shown only with MIRAGE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field

from mirage_mlir.diagnostics import Diagnostic, DiagnosticCollector, format_diagnostic, location_parts

from .errors import ToolError, debug_enabled, internal_error_message, run_main  # noqa: F401 (the tools' API)

# The bindings name every parsed buffer "-"; diagnostics and printed locations map it to the file.
BUFFER_NAME = "-"
SPLIT_MARKER = "// -----"


# -- command line -----------------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse that exits with 1 (as mlir-opt does on bad flags), not 2."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def normalize_argv(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Accepts mlir-opt's single-dash long options (`-split-input-file`) by doubling the dash.

    Only tokens naming a long option the parser knows are rewritten, so values such as `-`
    (stdin) and the arguments of `-o`/`-p` stay as they are.
    """
    known = {s for action in parser._actions for s in action.option_strings if s.startswith("--")}
    out, skip_next = [], False
    for token in argv:
        if skip_next:
            out.append(token)
            skip_next = False
            continue
        if token == "--":
            out.extend(argv[len(out):])
            break
        if re.match(r"^-[A-Za-z][\w-]+", token) and not token.startswith("--"):
            name = "-" + token.split("=", 1)[0]
            if name in known:
                token = "-" + token
        out.append(token)
        skip_next = token in ("-o", "-p")
    return out


# -- input --------------------------------------------------------------------------------------

@dataclass
class Source:
    """An input file: its display name, full text and lines (for carets)."""

    name: str
    text: str
    lines: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.lines = self.text.split("\n")


def read_source(path: str) -> Source:
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        reason = e.strerror or str(e)
        raise ToolError(f"cannot open input file '{path}': {reason}",
                        Diagnostic("error", f"cannot open input file: {reason}", name)) from None
    return Source(name, decode_source(data, name))


def decode_source(data: bytes, name: str) -> str:
    """The text of an MLIR file. Bytes that are not UTF-8 are accepted inside `//` comments (as
    mlir-opt does; they become U+FFFD) and refused, with their line and column, anywhere else."""
    text = data.decode("utf-8", errors="surrogateescape")  # an invalid byte b becomes U+DC00 + b
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        bad = [i for i, ch in enumerate(line) if "\udc80" <= ch <= "\udcff"]
        if not bad:
            continue
        comment = _comment_start(line)
        if comment is None or bad[0] < comment:
            byte = ord(line[bad[0]]) - 0xDC00
            raise ToolError(f"{name}:{number}:{bad[0] + 1}: invalid UTF-8 byte 0x{byte:02x}",
                            Diagnostic("error", f"invalid UTF-8 byte 0x{byte:02x} (outside a comment)", name,
                                       number, bad[0] + 1))
        lines[number - 1] = "".join("\ufffd" if "\udc80" <= ch <= "\udcff" else ch for ch in line)
    return "\n".join(lines)


def _comment_start(line: str) -> int | None:
    """Where a `//` comment starts on a line of MLIR, outside string literals; None if none."""
    in_string = escaped = False
    for i, ch in enumerate(line):
        if in_string:
            escaped, in_string = (not escaped and ch == "\\"), in_string and (escaped or ch != '"')
        elif ch == '"':
            in_string = True
        elif line.startswith("//", i):
            return i
    return None


@dataclass
class Chunk:
    text: str
    first_line: int  # line of the whole file where `text` starts


def split_input(text: str, enabled: bool) -> list[Chunk]:
    """MLIR's --split-input-file: chunks separated by lines starting `// -----`.

    A chunk after a marker starts with the rest of the marker's line, so its line numbers are
    those of the whole file.
    """
    if not enabled:
        return [Chunk(text, 1)]
    marker = re.compile(r"^" + re.escape(SPLIT_MARKER) + r"(?!-)", re.MULTILINE)
    chunks, start, first_line = [], 0, 1
    for m in marker.finditer(text):
        chunks.append(Chunk(text[start:m.start()], first_line))
        first_line = text.count("\n", 0, m.start()) + 1
        start = m.end()
    chunks.append(Chunk(text[start:], first_line))
    return chunks


# -- diagnostics --------------------------------------------------------------------------------

class Printer:
    """Prints diagnostics about one source file to stderr."""

    def __init__(self, source: Source):
        self.source = source

    def print(self, diag: Diagnostic) -> None:
        sys.stdout.flush()
        sys.stderr.write(format_diagnostic(diag, self.source.name, self.source.lines) + "\n")
        sys.stderr.flush()

    def print_collected(self, collector: DiagnosticCollector) -> bool:
        """Prints the diagnostics `collector` holds (and forgets them); True if none was an error."""
        diags = collector.take()
        for d in diags:
            self.print(d)
        return not any(d.severity == "error" for d in diags)


def open_source(path: str) -> Source | None:
    """read_source, or None once its error (an unreadable file, a byte that is not UTF-8) is printed
    where it is located."""
    try:
        return read_source(path)
    except ToolError as e:
        Printer(Source(e.diagnostic.file, "")).print(e.diagnostic)
        return None


def diagnostic_at(location, severity: str, message: str) -> Diagnostic:
    """A Diagnostic at an ir.Location (or None for an unknown location)."""
    file, line, col = location_parts(location) if location is not None else (None, None, None)
    if not line:  # line 0: the implicit module of a parsed file, i.e. the file as a whole
        line = col = None
    return Diagnostic(severity, message, file, line, col)


def emit_at(location, message: str, collector: DiagnosticCollector | None = None, notes=()) -> None:
    """Emits an error at `location` through MLIR (so handlers and the verifier see it).

    The bindings cannot attach notes to an emitted error, so notes ((location, message) pairs) are
    appended to the collected diagnostic instead.
    """
    location.emit_error(message)
    if collector is not None and notes and collector.diagnostics:
        collector.diagnostics[-1].notes.extend(diagnostic_at(loc, "note", msg) for loc, msg in notes)


def verify_mirage(op) -> bool:
    """mirage_mlir.dialect_verifier on `op`; a crash in it becomes an error at `op`."""
    from mirage_mlir.dialect_verifier import verify_dialects

    try:
        return verify_dialects(op)
    except Exception as e:  # noqa: BLE001
        op.location.emit_error(internal_error_message("the mirage dialect verifier", e))
        return False


# -- --verify-diagnostics -----------------------------------------------------------------------

# MLIR's designator syntax (mlir/lib/IR/Diagnostics.cpp), matched on the right-trimmed line.
_EXPECTED = re.compile(
    r"expected-(error|note|remark|warning)(-re)? *(@([+-][0-9]+|above|below|unknown))? *\{\{(.*)\}\}$")


@dataclass
class Expected:
    kind: str
    line: int | None  # the line it expects a diagnostic on; None: @unknown
    at: tuple[int, int]  # line and column of the designator itself, for errors about it
    text: str
    regex: re.Pattern | None = None
    matched: bool = False

    def match(self, message: str) -> bool:
        if self.regex is not None:
            return self.regex.search(message) is not None
        return self.text in message


def _compute_regex(text: str) -> re.Pattern:
    """`-re` designators: `{{...}}` parts are regexes, the rest is literal (as MLIR does)."""
    parts, rest = [], text
    while rest:
        start = rest.find("{{")
        if start < 0:
            parts.append(re.escape(rest))
            break
        parts.append(re.escape(rest[:start]))
        rest = rest[start + 2:]
        end = rest.find("}}")
        if end < 0:
            raise ValueError("found start of regex with no end '}}'")
        block = rest[:end]
        try:
            re.compile(block)
        except re.error as e:
            raise ValueError(f"invalid regex: {e}") from None
        parts.append(f"({block})")
        rest = rest[end + 2:]
    return re.compile("".join(parts))


class DiagnosticVerifier:
    """MLIR's --verify-diagnostics for one chunk: every diagnostic must match an `expected-*`
    designator of the chunk and every designator must be matched.

    Diagnostics are reported through `printer`; `ok` is False after any mismatch.
    """

    def __init__(self, chunk: Chunk, printer: Printer, only_expected: bool = False):
        self.printer = printer
        self.only_expected = only_expected
        self.ok = True
        self.expected: list[Expected] = []
        self.unknown: list[Expected] = []
        self._scan(chunk)

    def _error(self, line, col, message) -> None:
        self.printer.print(Diagnostic("error", message, BUFFER_NAME if line else None, line, col))
        self.ok = False

    def _scan(self, chunk: Chunk) -> None:
        lines = chunk.text.split("\n")
        last_plain = chunk.first_line  # the last line that is not a designator
        pending_below: list[Expected] = []
        for index, text in enumerate(lines):
            line = chunk.first_line + index
            m = _EXPECTED.search(text.rstrip())
            if not m:
                for e in pending_below:
                    e.line = line
                pending_below = []
                last_plain = line
                continue
            e = Expected(m[1], line, (line, m.start() + 1), m[5])
            if m[2]:
                try:
                    e.regex = _compute_regex(e.text)
                except ValueError as err:
                    self._error(*e.at, str(err))
                    continue
            where = m[4]
            if where is None:
                pass
            elif where[0] in "+-":
                e.line += int(where) if where[0] == "+" else -int(where[1:])
            elif where == "unknown":
                e.line = None
                self.unknown.append(e)
                continue
            elif where == "above":
                e.line = last_plain
            else:  # below: the next non-designator line, or past the end if none
                pending_below.append(e)
                e.line = chunk.first_line + len(lines)
            self.expected.append(e)

    def process(self, diag: Diagnostic, source_name: str) -> None:
        self._process_one(diag, source_name)
        for note in diag.notes:
            # mlir-opt turns off "see current operation" notes when verifying diagnostics.
            if not note.message.startswith("see current operation:"):
                self._process_one(note, source_name)

    def _process_one(self, diag: Diagnostic, source_name: str) -> None:
        if diag.line is None:
            candidates = self.unknown
        elif diag.file in (BUFFER_NAME, "", None, source_name):
            candidates = self.expected
        else:
            candidates = []  # a file we did not read: nothing can expect it
        near_miss = None
        for e in candidates:
            if diag.line is not None and diag.line != e.line:
                continue
            if e.match(diag.message):
                if e.kind == diag.severity:
                    e.matched = True
                    return
                near_miss = e
        if self.only_expected:
            return
        self.ok = False
        if near_miss is not None:
            self.printer.print(Diagnostic("error", f"'{diag.severity}' diagnostic emitted when expecting a "
                                          f"'{near_miss.kind}'", BUFFER_NAME, *near_miss.at))
        else:
            self.printer.print(Diagnostic("error", f"unexpected {diag.severity}: {diag.message}",
                                          diag.file, diag.line, diag.col))

    def finish(self) -> bool:
        """Reports unmatched designators; True when everything matched."""
        for e in self.expected + self.unknown:
            if not e.matched:
                self._error(*e.at, f'expected {e.kind} "{e.text}" was not produced')
        return self.ok


def rename_buffer_locations(text: str, name: str) -> str:
    """Printed locations (`loc("-":3:5)`) with the buffer name replaced by the real file name."""
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return re.sub(r'(?<=[(\[, ])"-":(?=\d+:\d+)', lambda _: quoted + ":", text)
