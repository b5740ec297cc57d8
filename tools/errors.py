"""What every tool does with errors (imports no MLIR: mirage-tune runs where MLIR is not installed):
a ToolError is one diagnostic and exit code 1; anything else escaping a tool is an internal error,
one line (MIRAGE_DEBUG=1 prints the traceback); never a traceback by default."""

from __future__ import annotations

import os
import sys
import traceback


def debug_enabled() -> bool:
    return os.environ.get("MIRAGE_DEBUG", "") not in ("", "0")


class ToolError(Exception):
    """A failure the tool reports as one diagnostic and exit code 1."""

    def __init__(self, message: str, diagnostic=None):
        super().__init__(message)
        self.diagnostic = diagnostic


def internal_error_message(what: str, error: BaseException) -> str:
    if debug_enabled():
        traceback.print_exc()
    hint = "" if debug_enabled() else " (set MIRAGE_DEBUG=1 for a traceback)"
    return f"internal error in {what}: {type(error).__name__}: {error}{hint}"


def run_main(prog: str, main, argv: list[str] | None) -> int:
    """Runs a tool's main; any error escaping it becomes a one-line diagnostic and exit code 1."""
    try:
        return main(sys.argv[1:] if argv is None else argv)
    except ToolError as e:
        sys.stderr.write(f"{prog}: error: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # A closed stdout (`| head`) is not an error of ours; silence the flush at exit.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        sys.stderr.write(f"{prog}: error: {internal_error_message(prog, e)}\n")
        return 1
