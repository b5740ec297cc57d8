"""MLIR contexts with the mirage dialects loaded, and parsing that keeps file names and lines."""

from __future__ import annotations

import mlir.ir as ir

from mirage_mlir.dialects import load_dialects


def make_context(allow_unregistered: bool = False) -> ir.Context:
    context = ir.Context()
    context.allow_unregistered_dialects = allow_unregistered
    load_dialects(context)
    return context


def parse_module(text: str, context: ir.Context, first_line: int = 1) -> ir.Module:
    """Parses `text`; locations report lines as if the text started at `first_line` of its file.

    The bindings name every parsed buffer "-", so callers map that name to the real file when
    printing diagnostics (mirage_mlir.diagnostics does). A failure MLIR reports without any
    diagnostic (an op of an IRDL dialect in custom form) gets one (diagnostics.unexplained_parse_failure).
    """
    from .diagnostics import unexplained_parse_failure

    text = "\n" * (first_line - 1) + text
    with unexplained_parse_failure(text):
        return ir.Module.parse(text, context)
