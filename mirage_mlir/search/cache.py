"""A disk cache of search results keyed by the canonical subgraph and the target.

Location: $MIRAGE_CACHE_DIR, else ~/.cache/mirage-mlir. One JSON file per key, holding the search's
verified candidates (best first); a file that does not parse, has another schema, or holds a graph
that fails graph_verify or does not match the program's interface is ignored (and overwritten by the
recomputed result).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ..graph_verify import verify
from ..mugraph import Graph, Node, TensorType

SCHEMA = 4


def cache_dir() -> Path:
    return Path(os.environ.get("MIRAGE_CACHE_DIR") or Path.home() / ".cache" / "mirage-mlir")


def graph_to_json(g: Graph) -> dict:
    return {
        "inputs": [[list(t.shape), t.dtype] for t in g.inputs],
        "nodes": [{"op": n.op, "inputs": list(n.inputs), "types": [[list(t.shape), t.dtype] for t in n.types],
                   "attrs": [[k, _enc(v)] for k, v in n.attrs],
                   "body": graph_to_json(n.body) if n.body is not None else None} for n in g.nodes],
        "outputs": list(g.outputs),
        "grid_dim": list(g.grid_dim), "block_dim": list(g.block_dim), "forloop_range": g.forloop_range,
        "max_stages": g.max_stages, "whole_k_warps": g.whole_k_warps,
    }


def _enc(v):
    if isinstance(v, tuple):
        return {"t": [_enc(x) for x in v]}
    if isinstance(v, float):
        return {"f": v.hex()}
    return v


def _dec(v):
    if isinstance(v, dict):
        if "t" in v:
            return tuple(_dec(x) for x in v["t"])
        return float.fromhex(v["f"])
    return v


def graph_from_json(d: dict) -> Graph:
    def tt(x):
        return TensorType(tuple(x[0]), x[1])

    nodes = tuple(Node(n["op"], tuple(n["inputs"]), tuple(tt(t) for t in n["types"]),
                       tuple((k, _dec(v)) for k, v in n["attrs"]),
                       graph_from_json(n["body"]) if n["body"] is not None else None) for n in d["nodes"])
    return Graph(tuple(tt(t) for t in d["inputs"]), nodes, tuple(d["outputs"]), tuple(d["grid_dim"]),
                 tuple(d["block_dim"]), int(d["forloop_range"]), int(d.get("max_stages", 0)),
                 bool(d.get("whole_k_warps", False)))


def cache_key(graph: Graph, target: str, options: dict) -> str:
    text = json.dumps({"schema": SCHEMA, "graph": graph_to_json(graph), "target": target, "options": options},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load(key: str, reference: Graph) -> dict | None:
    """The entry stored under `key`, its "graphs" (the verified candidates, best first) decoded and
    checked against the program's interface; None when absent or damaged."""
    path = cache_dir() / f"{key}.json"
    try:
        with open(path) as f:
            entry = json.load(f)
        if entry.get("schema") != SCHEMA:
            return None
        graphs = [graph_from_json(g) for g in entry["graphs"]]
        outputs = [reference.value_types[v] for v in reference.outputs]
        for graph in graphs:
            if verify(graph) or graph.inputs != reference.inputs:
                return None
            if [graph.value_types[v] for v in graph.outputs] != outputs:
                return None
        if not graphs:
            return None
        entry["graphs"] = graphs
        return entry
    except Exception:  # a damaged entry is ignored and recomputed
        return None


def store(key: str, graphs: list[Graph], info: dict) -> None:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        entry = dict(info, schema=SCHEMA, graphs=[graph_to_json(g) for g in graphs])
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f)
        os.replace(tmp, directory / f"{key}.json")
    except OSError:
        pass  # a read-only cache is not an error
