"""`mirage-verify`: checks every group of ops tagged `mirage.reference = @ref` against the reference
function it names (mirage_mlir/search/reference.py gives the convention): random tests over finite
fields (mirage_mlir/finite_field.py: fresh inputs and generators per trial, primes near 2^31 and
2^29, exp nesting handled by a prime tower), then a floating-point check with the reference
semantics (evaluate.FloatDomain). It fails with an error at the group's first graph_def naming the
first output that differs; ops without the attribute are not checked. An accepted group's first
graph_def records what was established in `mirage.verified`: "finite-field: N trials, false-positive
bound B; float max relative error E". Where a max's value reaches an output the finite fields cannot
decide (they decide max only where it stabilises; mirage_mlir/finite_field.py): an error, or with
accept-float-only=true the float check's verdict, recorded as "float-only (...)".
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import mlir.ir as ir

from mirage_mlir.bridge import BridgeError
from mirage_mlir.finite_field import check_equivalent
from mirage_mlir.graph_verify import verify as verify_structure
from mirage_mlir.search.reference import REFERENCE_ATTR, find_function, functions, group_graph, reference_graph

from .registry import Pass, PassError, option

VERDICT_ATTR = "mirage.verified"


@dataclasses.dataclass
class MirageVerify(Pass):
    NAME: ClassVar[str] = "mirage-verify"
    SUMMARY: ClassVar[str] = "Check optimized mu-graphs against the programs they replaced (finite fields + float)"

    trials: int = option(4, "finite-field tests per group")
    seed: int = option(0, "seed of the random tests")
    float_check: bool = option(True, "also compare in floating point")
    accept_float_only: bool = option(False, "accept a group on the float check alone where a max's value reaches "
                                            "an output (the finite fields cannot decide it)")

    def run(self, module) -> None:
        root = module.operation if hasattr(module, "operation") else module
        for fn in list(functions(root)):
            for block in fn.regions[0].blocks:
                groups: dict[str, list] = {}
                for op in block.operations:
                    op = op.operation
                    if REFERENCE_ATTR in op.attributes:
                        name = ir.FlatSymbolRefAttr(op.attributes[REFERENCE_ATTR]).value
                        groups.setdefault(name, []).append(op)
                for name, ops in groups.items():
                    self.check_group(root, name, ops, block)

    def check_group(self, root, name: str, ops: list, block) -> None:
        anchor = next((op for op in ops if op.name == "mirage_kernel.graph_def"), ops[0])
        ref_fn = find_function(root, name)
        if ref_fn is None:
            raise PassError(anchor, f"mirage-verify: no reference function @{name}")
        try:
            candidate, _, _, _ = group_graph(ops, block)
            reference = reference_graph(ref_fn)
        except (BridgeError, ValueError) as e:
            raise PassError(anchor, f"mirage-verify: cannot read the group tagged @{name}: {e}") from None
        problems = verify_structure(candidate)
        if problems:
            raise PassError(anchor, f"mirage-verify: the group tagged @{name} is malformed: {problems[0].message}")
        result = check_equivalent(reference, candidate, trials=self.trials, seed=self.seed,
                                  float_check_too=self.float_check)
        if result.equivalent and result.method == "float-only" and not self.accept_float_only:
            raise PassError(anchor, f"mirage-verify: the group tagged @{name} cannot be verified: "
                                    f"{result.details['why']}; the float check alone agrees (max relative error "
                                    f"{result.float_error:.2g}; accept-float-only=true accepts that)")
        if not result.equivalent:
            if result.first_mismatch is None:
                raise PassError(anchor, f"mirage-verify: the group tagged @{name} was not compared with its "
                                        f"reference: {result.reason}")
            raise PassError(anchor, f"mirage-verify: output #{result.first_mismatch} differs from the reference "
                                    f"@{name}: {result.reason}")
        anchor.attributes[VERDICT_ATTR] = ir.StringAttr.get(verdict(result))


def verdict(result) -> str:
    """What an accepted group's check established, as recorded in mirage.verified."""
    floats = f"; float max relative error {result.float_error:.2g}" if result.float_checked else ""
    if result.method == "float-only":
        return f"float-only (max relative error {result.float_error:.2g}): {result.details['why']}"
    return f"finite-field: {result.trials} trials, false-positive bound {result.bound:.2g}{floats}"
