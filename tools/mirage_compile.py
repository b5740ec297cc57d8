"""mirage-compile: an MLIR program (linalg-on-tensors from torch-mlir, or mirage_kernel ops) to a
directory of PTX and a manifest that `mirage_mlir.runtime` runs on the GPU.

  mirage-compile FILE -o DIR [--chip sm_90] [--plan published|NAME[:key=value,...]] [--no-search]
                 [--search-options OPTS] [--candidates K] [--constant-inputs N,N,...]

Default pipeline: mirage-specialize-dims (functions with a dynamic dim become static
specializations at --sizes and a dispatch), convert-linalg-to-mirage, mirage-superoptimize (options through --search-options;
--no-search skips it), mirage-lower-to-gpu, mirage-gpu-to-ptx{chip=...}; then every PTX is checked
with ptxas when it is installed. The search keeps up to K verified plans of each subgraph (default
8, distinct plans in the model's order), and beside each plan whose cp.async ring the generator would
deepen to 8 stages that twin (max_stages = 8: the same mu-graph, another schedule); each is lowered,
and the manifest lists them under the function's "candidates" for the runtime to time on its GPU.
The function's own "kernels" are the search's pick; where ptxas ran, every candidate is estimated
again with its kernels' registers (they may allow fewer resident blocks than the plan counted) and
the cost model's constants fitted for ranking (search.cost.RANKING), and "model_choice" names the
lowest, which a runtime that does not tune runs. `--plan published` replaces
the function with Mirage's published plan for the program (mirage_mlir/plans.py; the program is named
by the file's header comment `// NAME (...` or its file name) instead of converting and searching,
keeping the original as a reference function (`mirage.reference_function`); `--plan NAME` names the
plan, and
`--plan NAME:col_tile=32,k_tile=256` sets the plan's tile parameters (integers; see plans.py).
DIR receives manifest.json, one .ptx per gpu.module and gpu.mlir (the gpu-dialect code, before PTX),
and for candidate c > 0 of the search its own c<c>_*.ptx files and c<c>_gpu.mlir; candidates.json
holds every candidate's mu-graph and estimate (benchmarks/calibrate.py fits the model to them).
"""

from __future__ import annotations

import json
import os
import re
import sys

PROG = "mirage-compile"


def build_parser():
    from mirage_mlir.tools.driver import ArgumentParser

    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                       epilog="Example: mirage-compile examples/gqa_bs1_f16.mlir -o build/gqa --plan published")
    p.add_argument("input", help="input MLIR file (- for stdin)")
    p.add_argument("-o", dest="output", required=True, help="output directory (created)")
    p.add_argument("--chip", default="sm_90", help="GPU target (default sm_90; sm_80 works too)")
    p.add_argument("--features", default="+ptx80", help="PTX features (default +ptx80)")
    p.add_argument("--opt-level", type=int, default=3, help="LLVM optimization level (default 3)")
    p.add_argument("--plan", default=None,
                   help="use a hand-written plan instead of the search: 'published' (named by the file) or a "
                        "plan name, with tile parameters as NAME:key=value,...")
    p.add_argument("--function", default="main", help="function to compile with --plan (default main)")
    p.add_argument("--no-search", action="store_true", help="skip mirage-superoptimize (lower the converted kernel ops as they are)")
    p.add_argument("--search-options", default="", metavar="OPTS",
                   help="options of mirage-superoptimize, e.g. 'time-budget=10 workers=4'")
    p.add_argument("--candidates", type=int, default=8, metavar="K",
                   help="verified plans per subgraph kept for the runtime to time (default 8, each with a deeper-ring "
                        "twin where its ring would deepen; 1: the model's pick only)")
    p.add_argument("--sizes", default="1,8,16,32,64", metavar="N,N,...",
                   help="for a function with a dynamic dim: the sizes it is specialized at (mirage-specialize-dims; "
                        "default 1,8,16,32,64); a call may have any size up to the largest")
    p.add_argument("--lower-options", default="", metavar="OPTS",
                   help="mirage-lower-to-gpu options, e.g. 'fuse-split-k=false'")
    p.add_argument("--constant-inputs", default="", metavar="N,N,...",
                   help="indices of the arguments that no work before a call writes (weights): the first "
                        "kernel then copies their tiles while that work finishes (mirage-lower-to-gpu "
                        "constant-inputs)")
    p.add_argument("--no-ptxas", action="store_true", help="do not check the PTX with ptxas")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    return p


def program_name(source_text: str, path: str) -> str | None:
    """The benchmark program a file holds: its header comment `// NAME (...` or its file name."""
    from mirage_mlir.plans import PLANS

    m = re.match(r"\s*//\s*([A-Za-z_][\w]*)\s*\(", source_text)
    if m and m.group(1) in PLANS:
        return m.group(1)
    base = os.path.basename(path)
    for name in sorted(PLANS, key=len, reverse=True):
        if base.startswith(name + "_") or base.startswith(name + "."):
            return name
    return None


def apply_plan(module, plan: str, function: str, source_text: str, path: str) -> None:
    """Replaces `function` by the plan's mu-graph (as mirage_kernel ops), keeping it as a reference."""
    import mlir.ir as ir
    from mlir.dialects import func as func_d

    from mirage_mlir.bridge import build_graph, tensor_type
    from mirage_mlir.passes import PassError
    from mirage_mlir.plans import PLANS, VARIANTS

    plans = {**PLANS, **VARIANTS}
    plan, _, params_text = plan.partition(":")
    name = program_name(source_text, path) if plan == "published" else plan
    try:
        params = {k.strip(): int(v) for k, v in (item.split("=") for item in params_text.split(",") if item)}
    except ValueError:
        raise PassError(module.operation, f"plan parameters '{params_text}': expected key=integer,...") from None
    if name not in plans:
        known = ", ".join(sorted(plans))
        what = f"'{plan}'" if plan != "published" else "this file's program (header comment or file name)"
        raise PassError(module.operation, f"no published plan for {what}; plans: {known}")
    target = None
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == function:
            target = op
    if target is None:
        raise PassError(module.operation, f"no function @{function} in the input")
    ftype = ir.FunctionType(ir.TypeAttr(target.attributes["function_type"]).value)
    arg_types = [tensor_type(t) for t in ftype.inputs]
    try:
        graph = plans[name](arg_types, **params)
    except TypeError as e:
        raise PassError(target, f"the plan '{name}' does not take these parameters: {e}") from None
    except Exception as e:  # noqa: BLE001 - shapes the plan cannot split
        raise PassError(target, f"the published plan '{name}' does not fit these arguments: {e}") from None
    results = [graph.value_types[v] for v in graph.outputs]
    expected = [tensor_type(t) for t in ftype.results]
    if results != expected:
        raise PassError(target, f"the plan '{name}' returns {', '.join(map(str, results))}, the function "
                                f"{', '.join(map(str, expected))}")
    with target.location, ir.InsertionPoint(target):
        new = func_d.FuncOp(function, ir.FunctionType.get(list(ftype.inputs), list(ftype.results)))
        entry = new.add_entry_block()
        with ir.InsertionPoint(entry):
            outs = build_graph(graph, list(entry.arguments))
            func_d.ReturnOp(outs)
    new.operation.attributes["mirage.plan"] = ir.StringAttr.get(name)
    # The replaced program stays as a reference function (mirage_mlir/search/reference.py's convention);
    # mirage-lower-to-gpu drops it.
    target.attributes["sym_name"] = ir.StringAttr.get(f"{function}__mirage_plan_ref")
    target.attributes["sym_visibility"] = ir.StringAttr.get("private")
    target.attributes["mirage.reference_function"] = ir.UnitAttr.get()


def _run_pass(module, name: str, options: str = ""):
    from mirage_mlir.passes import pass_class

    instance = pass_class(name).from_options(options)
    instance.run(module.operation)
    return instance


def install_candidate(module, results: list, c: int) -> dict:
    """Replaces the searchable groups of `module` (the text the search read) by candidate c of each
    search result, or by the search's pick where it has fewer; returns {function: estimate} of the
    functions that got candidate c (none: nothing to lower)."""
    from mirage_mlir.passes.mirage_superoptimize import replace_group, searchable_groups

    chosen = {}
    for (fn, block, group), (fname, result) in zip(list(searchable_groups(module.operation)), results):
        if c < len(result.candidates):
            estimate, graph = result.candidates[c]
            chosen[fname] = estimate
        elif result.graph is not None:
            graph = result.graph
        else:
            continue
        replace_group(module.operation, fn, block, group, graph)
    return chosen


def add_candidate(manifest: dict, files: dict, lowered: tuple, c: int, chosen: dict) -> None:
    """Adds the kernels of candidate c (a lowered module's manifest and PTX files) to the functions of
    `manifest` that it replaced, its PTX files renamed c<c>_<name>."""
    alternative, alternative_files = lowered
    for name, data in alternative_files.items():
        files[f"c{c}_{name}"] = data
    for fname, estimate in chosen.items():
        spec = alternative["functions"][fname]
        kernels = [dict(k, ptx=f"c{c}_{k['ptx']}") for k in spec["kernels"]]
        manifest["functions"][fname].setdefault("candidates", []).append(
            {"estimate_us": estimate, "kernels": kernels, "temporaries": spec["temporaries"]})


def compile_file(source, args, printer) -> int:
    import mlir.ir as ir

    from mirage_mlir.context import make_context, parse_module
    from mirage_mlir.diagnostics import Diagnostic, DiagnosticCollector
    from mirage_mlir.lowering.manifest import ManifestError, read_program, write_program
    from mirage_mlir.lowering.ptx import find_ptxas, run_ptxas
    from mirage_mlir.passes import PASSES, OptionError, PassError
    from mirage_mlir.search.cache import graph_to_json
    from mirage_mlir.tools.driver import diagnostic_at

    ctx = make_context()
    with ctx, DiagnosticCollector(ctx) as collector:
        def flush() -> bool:
            return printer.print_collected(collector)

        try:
            module = parse_module(source.text, ctx)
        except ir.MLIRError as e:
            collector.add_parse_error(e)
            flush()
            return 1
        stages = [("mirage-specialize-dims", f"sizes={args.sizes}")] if not args.plan else []
        if args.plan:
            stages.append(("plan", None))
        elif "convert-linalg-to-mirage" in PASSES:
            stages.append(("convert-linalg-to-mirage", ""))
        if not args.plan and not args.no_search and "mirage-superoptimize" in PASSES:
            options = f"{args.search_options} candidates={args.candidates}".strip()
            stages.append(("mirage-superoptimize", options))
        lower_options = (args.lower_options + f" chip={args.chip}"
                         + (f" constant-inputs={args.constant_inputs}" if args.constant_inputs else ""))
        lowering = [("mirage-lower-to-gpu", lower_options.strip()),
                    ("mirage-gpu-to-ptx", f"chip={args.chip} features={args.features} opt-level={args.opt_level}")]
        search, searched_text, gpu_text = None, None, None

        def run_stages(module, stages, main: bool = True) -> bool:
            nonlocal search, searched_text, gpu_text
            for name, options in stages:
                try:
                    if name == "plan":
                        apply_plan(module, args.plan, args.function, source.text, source.name)
                    else:
                        if name == "mirage-superoptimize":
                            searched_text = str(module)
                        if name == "mirage-gpu-to-ptx":
                            gpu_text = str(module)
                        instance = _run_pass(module, name, options)
                        if name == "mirage-superoptimize":
                            search = instance
                except PassError as e:
                    target = e.op if e.op is not None else module.operation
                    fail(diagnostic_at(target.location, "error", f"{name}: {e}"), main)
                    return False
                except OptionError as e:
                    fail(Diagnostic("error", str(e)), main)
                    return False
                if not (flush() if main else not any(d.severity == "error" for d in collector.take())):
                    return False
                if not module.operation.verify():
                    collector.take()
                    fail(Diagnostic("error", f"the module does not verify after {name}"), main)
                    return False
            return True

        def fail(diagnostic, main: bool) -> None:
            """An error of the main module stops the compile; an alternative candidate that does not
            lower is dropped with a warning."""
            if main:
                flush()
                printer.print(diagnostic)
            else:
                printer.print(Diagnostic("warning", f"a candidate plan did not lower and was dropped: {diagnostic.message}"))

        if not run_stages(module, stages + lowering):
            return 1
        texts = {"gpu.mlir": gpu_text}
        try:
            manifest, files = read_program(module, args.chip)
            if search is not None:
                # K plans, and the search adds each one's deeper-ring twin where the ring would deepen
                for c in range(1, max((len(result.candidates) for _, result in search.results), default=1)):
                    alternative = parse_module(searched_text, ctx)
                    chosen = install_candidate(alternative, search.results, c)
                    if chosen and run_stages(alternative, lowering, main=False):
                        add_candidate(manifest, files, read_program(alternative, args.chip), c, chosen)
                        texts[f"c{c}_gpu.mlir"] = gpu_text
                texts["candidates.json"] = json.dumps({fname: [{"estimate_us": us, "graph": graph_to_json(g)}
                                                               for us, g in result.candidates]
                                                       for fname, result in search.results}) + "\n"
                for fname, result in search.results:
                    entry = manifest["functions"][fname]
                    if entry.get("candidates"):  # the model's pick first
                        entry["candidates"].insert(0, {"estimate_us": result.candidates[0][0],
                                                       "kernels": entry["kernels"], "temporaries": entry["temporaries"]})
                        entry["model_choice"] = 0
        except ManifestError as e:
            printer.print(Diagnostic("error", str(e)))
            return 1
    manifest["source"] = os.path.basename(source.name)
    manifest["pipeline"] = [n if n != "plan" else f"plan:{args.plan}" for n, _ in stages + lowering]
    if not args.no_ptxas:
        ptxas = find_ptxas()
        if ptxas is None:
            if not args.quiet:
                sys.stderr.write(f"{PROG}: note: ptxas not found; the PTX was not assembled\n")
        else:
            report, cubins = {}, {}  # cubins: the runtime loads them on a GPU of --chip (no JIT)
            for fname, ptx in list(files.items()):
                result = run_ptxas(ptx, args.chip, ptxas)
                if not result.ok and fname in own_files(manifest):
                    sys.stderr.write(f"{PROG}: error: ptxas rejected {fname}:\n{result.log}")
                    return 1
                if not result.ok:
                    sys.stderr.write(f"{PROG}: warning: ptxas rejected {fname}; its candidate plan was dropped\n")
                    drop_candidates_using(manifest, files, fname)
                    continue
                prefix = "" if fname in own_files(manifest) else fname.split("_", 1)[0] + ":"
                for kernel, regs in result.registers.items():
                    report[prefix + kernel] = {"registers": regs, "spill_bytes": result.spills.get(kernel, 0)}
                cubins[fname] = fname.removesuffix(".ptx") + ".cubin"
                files[cubins[fname]] = result.cubin
            manifest["ptxas"] = report
            manifest["cubins"] = cubins
            if search is not None:
                rank_with_registers(manifest, search.results, search.target)
    kept = {name.split("_", 1)[0] for name in files if name.startswith("c")}  # candidates ptxas accepted
    texts = {name: text for name, text in texts.items()
             if name in ("gpu.mlir", "candidates.json") or name.split("_", 1)[0] in kept}
    write_program(args.output, manifest, files, texts)
    if not args.quiet:
        for fname, entry in manifest["functions"].items():
            if "dispatch" in entry:
                table = entry["dispatch"]
                sys.stdout.write(f"{args.output}: @{fname}: dispatches sizes 1..{table['sizes'][-1]} to "
                                 f"{', '.join('@' + f for f in table['functions'])}\n")
                continue
            kernels = ", ".join(f"{k['name']} grid {tuple(k['grid'])} smem {k['shared_bytes']}B" for k in entry["kernels"])
            sys.stdout.write(f"{args.output}: @{fname}: {len(entry['kernels'])} kernel(s): {kernels}\n")
    return 0


def rank_with_registers(manifest: dict, results: list, target: str) -> None:
    """Re-estimates every candidate with its kernels' registers from ptxas (they may hold a kernel to
    fewer resident blocks than its shared memory allows: 90 registers at 256 threads, two blocks an SM
    where the plan counted three), the function's constant inputs (a first kernel may copy them beside
    the call before) and the constants fitted for ranking (cost.RANKING), and makes the lowest
    estimate the model's choice."""
    from mirage_mlir.lowering.manifest import candidate_index, kernel_registers
    from mirage_mlir.search.cost import cost, ranking_chip

    chip = ranking_chip(target)
    for fname, result in results:
        entry = manifest["functions"][fname]
        for candidate in entry.get("candidates", []):
            graph = result.candidates[candidate_index(candidate["kernels"])][1]
            candidate["estimate_us"] = cost(graph, chip, kernel_registers(manifest, candidate["kernels"]),
                                            frozenset(entry.get("constant_inputs", ()))).total_us
        if entry.get("candidates"):
            estimates = [candidate["estimate_us"] for candidate in entry["candidates"]]
            entry["model_choice"] = estimates.index(min(estimates))


def own_files(manifest: dict) -> set[str]:
    """The PTX files of the functions' own kernels (the model's picks)."""
    return {k["ptx"] for entry in manifest["functions"].values() for k in entry.get("kernels", [])}


def drop_candidates_using(manifest: dict, files: dict, ptx: str) -> None:
    """Removes the candidates whose kernels load `ptx` (never the functions' own kernels) and the file."""
    files.pop(ptx, None)
    for entry in manifest["functions"].values():
        kept = [x for x in entry.get("candidates", []) if all(k["ptx"] != ptx for k in x["kernels"])]
        if len(kept) > 1:
            entry["candidates"] = kept
        else:
            entry.pop("candidates", None)
            entry.pop("model_choice", None)


def _main(argv: list[str]) -> int:
    from mirage_mlir.tools.driver import Printer, normalize_argv, open_source

    parser = build_parser()
    args = parser.parse_args(normalize_argv(argv, parser))
    source = open_source(args.input)
    return 1 if source is None else compile_file(source, args, Printer(source))


def main(argv: list[str] | None = None) -> int:
    from mirage_mlir.tools.driver import run_main

    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
