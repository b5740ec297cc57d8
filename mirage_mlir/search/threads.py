"""Thread graphs by rule-based fusion (as Mirage's code generator does): in every block graph, each
maximal tree of elementwise ops whose intermediate results have a single elementwise user of the
same shape in the same loop phase becomes one `thread_graph` whose body runs the chain on scalars in registers."""

from __future__ import annotations

from dataclasses import replace

from ..mugraph import Graph, Node, TensorType
from ..opset import ELEMENTWISE


def fuse_thread_graphs(graph: Graph) -> Graph:
    nodes = tuple(Node(n.op, n.inputs, n.types, n.attrs, fuse_block(n.body)) if n.op == "graph_def" else n
                  for n in graph.nodes)
    return replace(graph, nodes=nodes)


def fuse_block(body: Graph) -> Graph:
    post = body.after_loop
    users: dict[int, list[int]] = {}
    for i, n in enumerate(body.nodes):
        for v in n.inputs:
            users.setdefault(v, []).append(i)
    producer = body.producers
    # parent[i] = the node that absorbs node i
    parent: dict[int, int] = {}
    for i, n in enumerate(body.nodes):
        if n.op not in ELEMENTWISE:
            continue
        v = body.first_result[i]
        us = users.get(v, [])
        if v in body.outputs or len(us) != 1:
            continue
        j = us[0]
        # a value its user broadcasts stays outside (in the thread graph it would be recomputed for
        # every element of the user)
        if (body.nodes[j].op in ELEMENTWISE and (i in post) == (j in post)
                and n.types[0].shape == body.nodes[j].types[0].shape):
            parent[i] = j

    def root(i):
        while i in parent:
            i = parent[i]
        return i

    groups: dict[int, list[int]] = {}
    for i in parent:
        groups.setdefault(root(i), []).append(i)
    if not groups:
        return body
    absorbed = set(parent)
    new_nodes: list[Node] = []
    remap: dict[int, int] = {v: v for v in range(len(body.inputs))}
    next_id = len(body.inputs)
    for i, n in enumerate(body.nodes):
        if i in absorbed:
            continue
        if i in groups:
            members = sorted(groups[i] + [i])
            member_set = set(members)
            external: list[int] = []
            for m in members:
                for v in body.nodes[m].inputs:
                    p = producer.get(v)
                    if (p is None or p[0] not in member_set) and v not in external:
                        external.append(v)
            inner_ids = {v: k for k, v in enumerate(external)}
            inner_nodes = []
            for m in members:
                mn = body.nodes[m]
                inner_ids[body.first_result[m]] = len(external) + len(inner_nodes)
                inner_nodes.append(Node(mn.op, tuple(inner_ids[v] for v in mn.inputs),
                                        tuple(TensorType((), t.dtype) for t in mn.types), mn.attrs))
            thread_body = Graph(tuple(TensorType((), body.value_types[v].dtype) for v in external),
                                tuple(inner_nodes), (inner_ids[body.first_result[i]],))
            n = Node("thread_graph", tuple(remap[v] for v in external), n.types, (), thread_body)
        else:
            n = Node(n.op, tuple(remap[v] for v in n.inputs), n.types, n.attrs, n.body)
        remap[body.first_result[i]] = next_id
        next_id += len(n.types)
        new_nodes.append(n)
    return replace(body, nodes=tuple(new_nodes), outputs=tuple(remap[v] for v in body.outputs))
