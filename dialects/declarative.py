"""A small declarative layer for defining MLIR dialects in Python.

Op specs are plain dataclasses; `DialectSpec.irdl()` emits IRDL text and `load_into(ctx)` loads it
with `mlir.dialects.irdl.load_dialects`. Moving to upstream `mlir.dialects.ext` later means
rewriting only `irdl()`, not the dialects.

What IRDL in MLIR 22 cannot say is recorded here and checked by our own verifier instead:
- optional attributes (IRDL requires every declared attribute): declared with `optional=True`,
  left out of the IRDL text;
- heterogeneous variadic operands/results (IRDL unifies one constraint across all elements):
  emitted as `max_count` optional slots, each with its own constraint, plus
  `operandSegmentSizes`/`resultSegmentSizes`, which `segment_sizes()` computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlir.ir as ir
from mlir.dialects import irdl

# Value kinds: "tensor" (any builtin tensor; shapes are our verifier's job) or "float" (a scalar).
TENSOR_CONSTRAINT = 'irdl.base "!builtin.tensor"'
SCALAR_FLOAT_TYPES = ("f16", "bf16", "f32", "f64")

# IRDL constraint text for each attribute kind.
ATTR_CONSTRAINTS = {
    "i64": 'irdl.base "#builtin.integer"',
    "f64": 'irdl.base "#builtin.float"',
    "str": 'irdl.base "#builtin.string"',
    "i64_array": 'irdl.base "#builtin.dense_array"',
    "symbols": 'irdl.base "#builtin.array"',
}


@dataclass(frozen=True)
class Value:
    """An operand or result of kind "tensor" or "float" (scalar)."""

    name: str
    kind: str = "tensor"
    variadic: bool = False
    max_count: int = 8  # slots emitted for a variadic value

    def slot_names(self) -> list[str]:
        if not self.variadic:
            return [self.name]
        return [f"{self.name}{i}" for i in range(self.max_count)]


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # a key of ATTR_CONSTRAINTS
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class OpSpec:
    name: str
    summary: str
    operands: tuple[Value, ...] = ()
    results: tuple[Value, ...] = (Value("result"),)
    attrs: tuple[Attr, ...] = ()
    has_region: bool = False

    def is_variadic(self) -> bool:
        return any(v.variadic for v in self.operands + self.results)


def segment_sizes(values: tuple[Value, ...], count: int) -> list[int] | None:
    """Segment sizes for `count` actual values over the declared slots, or None if they do not fit.

    A variadic value takes the leading slots of its group: `count` ones then zeros.
    """
    fixed = sum(1 for v in values if not v.variadic)
    variadic = [v for v in values if v.variadic]
    if not variadic:
        return [1] * len(values) if count == len(values) else None
    assert len(variadic) == 1, "one variadic group per op keeps segments unambiguous"
    extra = count - fixed
    if extra < 0 or extra > variadic[0].max_count:
        return None
    sizes = []
    for v in values:
        if v.variadic:
            sizes += [1] * extra + [0] * (v.max_count - extra)
        else:
            sizes.append(1)
    return sizes


@dataclass
class DialectSpec:
    name: str
    summary: str
    ops: list[OpSpec] = field(default_factory=list)

    def op(self, name: str) -> OpSpec:
        return self.by_name()[name]

    def by_name(self) -> dict[str, OpSpec]:
        return {op.name: op for op in self.ops}

    def irdl(self) -> str:
        lines = [f"// {self.summary}", f"irdl.dialect @{self.name} {{"]
        for op in self.ops:
            lines.append(f"  // {op.summary}")
            lines.append(f"  irdl.operation @{op.name} {{")
            counter = iter(range(10_000))

            def constraint(text: str) -> str:
                var = f"%c{next(counter)}"
                lines.append(f"    {var} = {text}")
                return var

            def float_constraint() -> str:
                parts = [constraint(f"irdl.is {t}") for t in SCALAR_FLOAT_TYPES]
                return constraint(f"irdl.any_of({', '.join(parts)})")

            def values_decl(keyword: str, values: tuple[Value, ...]) -> None:
                entries = []
                for v in values:
                    for slot in v.slot_names():
                        # A fresh constraint per slot: IRDL unifies a reused constraint variable.
                        var = float_constraint() if v.kind == "float" else constraint(TENSOR_CONSTRAINT)
                        entries.append(f"{slot}: {'optional ' if v.variadic else ''}{var}")
                if entries:
                    lines.append(f"    irdl.{keyword}({', '.join(entries)})")

            values_decl("operands", op.operands)
            values_decl("results", op.results)
            required = [a for a in op.attrs if not a.optional]
            if required:
                entries = [f'"{a.name}" = {constraint(ATTR_CONSTRAINTS[a.kind])}' for a in required]
                lines.append(f"    irdl.attributes {{{', '.join(entries)}}}")
            if op.has_region:
                region = constraint("irdl.region")
                lines.append(f"    irdl.regions(body: {region})")
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def load_into(self, context: ir.Context) -> None:
        with context:
            irdl.load_dialects(ir.Module.parse(self.irdl()))
