"""Pass infrastructure: a lazy registry of the mirage passes and their dataclass options.

A pass is a dataclass whose fields are its options (`time_budget` is spelled `time-budget` in a
pipeline); `run(module)` transforms the module in place and raises PassError to fail with a
diagnostic at an op. Modules are imported only when their pass is used.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import ClassVar

import mlir.ir as ir

# pass argument -> "module:Class" (relative to mirage_mlir.passes)
PASSES: dict[str, str] = {
    "convert-linalg-to-mirage": "convert_linalg_to_mirage:ConvertLinalgToMirage",
    "mirage-lower-to-gpu": "mirage_lower_to_gpu:MirageLowerToGpu",
    "mirage-gpu-to-ptx": "mirage_gpu_to_ptx:MirageGpuToPtx",
    "mirage-superoptimize": "mirage_superoptimize:MirageSuperoptimize",
    "mirage-specialize-dims": "mirage_specialize_dims:MirageSpecializeDims",
    "mirage-verify": "mirage_verify:MirageVerify",
}


class PassError(Exception):
    """Fails the running pass with an error at `op` (and optional notes: (op, message) pairs)."""

    def __init__(self, op: ir.Operation | None, message: str, notes: list | None = None):
        super().__init__(message)
        self.op = op
        self.notes = notes or []


class OptionError(ValueError):
    pass


@dataclasses.dataclass
class Pass:
    NAME: ClassVar[str] = ""
    SUMMARY: ClassVar[str] = ""

    def run(self, module: ir.Operation) -> None:
        raise NotImplementedError

    @classmethod
    def options(cls) -> list[tuple[str, str, object, str]]:
        """(option name, type name, default, help) for every option."""
        return [(f.name.replace("_", "-"), f.type if isinstance(f.type, str) else f.type.__name__,
                 f.default, f.metadata.get("help", "")) for f in dataclasses.fields(cls)]

    @classmethod
    def from_options(cls, text: str) -> Pass:
        """An instance from pipeline option text such as `time-budget=30 seed=1`."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for item in text.split():
            key, eq, raw = item.partition("=")
            name = key.replace("-", "_")
            if name not in fields:
                known = ", ".join(sorted(n.replace("_", "-") for n in fields)) or "none"
                raise OptionError(f"'{cls.NAME}' has no option '{key}' (options: {known})")
            if not eq:
                raise OptionError(f"option '{key}' of '{cls.NAME}' needs a value ('{key}=...')")
            values[name] = _convert(raw, type(fields[name].default), key)
        return cls(**values)


def option(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


def _convert(raw: str, kind: type, key: str):
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        return kind(raw)
    except ValueError:
        raise OptionError(f"option '{key}' expects a {kind.__name__}, got '{raw}'") from None


def pass_class(name: str) -> type[Pass]:
    module, _, cls = PASSES[name].partition(":")
    return getattr(importlib.import_module(f"mirage_mlir.passes.{module}"), cls)
