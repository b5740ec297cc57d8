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

A `mirage.dispatch` (mirage-specialize-dims) tagged with the function as given is compared with it
on the interpreter at sizes between its compiled ones (3, one past a middle size, the largest;
relative error within 1e-2 for 16-bit, 1e-4 otherwise), its verdict recorded in `mirage.verified`:
each specialization is verified as a group at its own size, and rows being independent makes that
hold at every smaller size; this checks the dispatch itself (choice of specialization, row counts).
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
                    if op.name == "mirage.dispatch" and REFERENCE_ATTR in op.attributes:
                        self.check_dispatch(root, op)
                    elif REFERENCE_ATTR in op.attributes:
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

    def check_dispatch(self, root, op) -> None:
        """A dispatch over specializations (mirage-specialize-dims) against the function as given, in
        floating point on the interpreter, at sizes between the compiled ones (each specialization is
        checked at its own size by the groups' verification): a small odd size, one past a middle
        compiled size, and the largest."""
        import numpy as np

        from mirage_mlir.interpreter import Interpreter, InterpreterError, random_inputs

        name = ir.FlatSymbolRefAttr(op.attributes[REFERENCE_ATTR]).value
        ref_fn = find_function(root, name)
        if ref_fn is None:
            raise PassError(op, f"mirage-verify: no reference function @{name}")
        sizes = list(ir.DenseI64ArrayAttr(op.attributes["sizes"]))
        checked = sorted({min(3, sizes[-1]), min(sizes[len(sizes) // 2] + 1, sizes[-1]), sizes[-1]})
        interp = Interpreter(root.opview)
        dispatcher = op.parent.operation if hasattr(op.parent, "operation") else op.parent  # its function
        worst = 0.0
        for n in checked:
            inputs = random_inputs(ref_fn, seed=self.seed + n, dynamic_size=n)
            try:
                want = interp.call(ref_fn, inputs)
                got = interp.call(dispatcher, inputs)
            except InterpreterError as e:
                raise PassError(op, f"mirage-verify: the dispatch cannot be compared with @{name} at size {n}: "
                                    f"{e.message}") from None
            for k, (w, g) in enumerate(zip(want, got)):
                w, g = np.asarray(w, np.float64), np.asarray(g, np.float64)
                err = float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30)) if np.all(np.isfinite(g)) else np.inf
                tolerance = 1e-2 if np.asarray(want[k]).dtype.itemsize <= 2 else 1e-4
                if g.shape != w.shape or not err <= tolerance:
                    detail = f"relative error {err:.2g}" if np.isfinite(err) else "non-finite values"
                    raise PassError(op, f"mirage-verify: output #{k} of the dispatch differs from @{name} at size {n} "
                                        f"({detail}, shape {list(g.shape)})")
                worst = max(worst, err)
        op.attributes[VERDICT_ATTR] = ir.StringAttr.get(
            f"float at sizes {', '.join(map(str, checked))} (between the compiled {', '.join(map(str, sizes))}, "
            f"each verified at its own size): max relative error {worst:.2g}")


def verdict(result) -> str:
    """What an accepted group's check established, as recorded in mirage.verified."""
    floats = f"; float max relative error {result.float_error:.2g}" if result.float_checked else ""
    if result.method == "float-only":
        return f"float-only (max relative error {result.float_error:.2g}): {result.details['why']}"
    return f"finite-field: {result.trials} trials{result.scope}, false-positive bound {result.bound:.2g}{floats}"
