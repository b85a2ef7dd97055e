"""The graph for people: GraphML for Gephi and friends, and a drawing of one query's subgraph."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import networkx

from graphmem.memory import GraphMemory
from graphmem.retrieve import GraphResult


def _node_id(node: tuple[str, int]) -> str:
    return f"{node[0]}:{node[1]}"


def to_graphml_graph(memory: GraphMemory, chunk_label: Callable[[int], str]) -> networkx.Graph:
    """A copy with string node ids and scalar attributes only (GraphML cannot store lists)."""
    out = networkx.Graph()
    for node in memory.node_list():
        kind, index = node
        if kind == "e":
            out.add_node(_node_id(node), type="entity", label=memory.entity_names[index],
                         kind=memory.entity_kinds[index], mentions=len(memory.entity_chunks[index]))
        else:
            out.add_node(_node_id(node), type="chunk", label=chunk_label(index), kind="chunk", mentions=0)
    for u, v, data in memory.graph().edges(data=True):
        relation = "; ".join(dict.fromkeys(data.get("relations", [])))
        edge_type = "relation" if relation else ("mention" if data.get("mention") else "synonym")
        out.add_edge(_node_id(u), _node_id(v), weight=float(data.get("weight", 1.0)), type=edge_type,
                     relation=relation, synonym=bool(data.get("synonym", False)))
    return out


def write_graphml(memory: GraphMemory, path: Path, chunk_label: Callable[[int], str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    networkx.write_graphml(to_graphml_graph(memory, chunk_label), str(path))
    return path


def draw_subgraph(memory: GraphMemory, result: GraphResult, path: Path, chunk_label: Callable[[int], str],
                  title: str = "", max_chunks_per_triple: int = 2) -> Path:
    """PNG of the linked triples (entity -> entity, labelled by relation) and their supporting chunks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = networkx.DiGraph()
    relation_labels: dict[tuple[str, str], str] = {}
    for linked in result.triples:
        t = linked.triple
        head, tail = memory.entity_names[memory.triple_head[t]], memory.entity_names[memory.triple_tail[t]]
        graph.add_edge(head, tail, kind="relation")
        relation_labels[(head, tail)] = memory.triple_relation[t]
        for row in memory.triple_chunks[t][:max_chunks_per_triple]:
            label = chunk_label(int(row))
            graph.add_edge(label, tail, kind="support")
    figure, axes = plt.subplots(figsize=(12, 9))
    if graph.number_of_nodes():
        layout = networkx.spring_layout(graph, seed=7, k=1.2)
        chunks = [n for n in graph if any(d["kind"] == "support" for _, _, d in graph.out_edges(n, data=True))]
        entities = [n for n in graph if n not in chunks]
        networkx.draw_networkx_nodes(graph, layout, nodelist=entities, node_color="#9ecae1", node_size=900, ax=axes)
        networkx.draw_networkx_nodes(graph, layout, nodelist=chunks, node_color="#fdd0a2", node_shape="s",
                                     node_size=700, ax=axes)
        networkx.draw_networkx_edges(graph, layout, ax=axes, arrows=True,
                                     edgelist=[(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "relation"])
        networkx.draw_networkx_edges(graph, layout, ax=axes, style="dashed", alpha=0.5,
                                     edgelist=[(u, v) for u, v, d in graph.edges(data=True) if d["kind"] == "support"])
        networkx.draw_networkx_labels(graph, layout, font_size=8, ax=axes,
                                      font_family=["Noto Sans CJK SC", "WenQuanYi Zen Hei", "DejaVu Sans"])
        networkx.draw_networkx_edge_labels(graph, layout, edge_labels=relation_labels, font_size=7, ax=axes)
    else:
        axes.text(0.5, 0.5, "no triples linked to this query", ha="center")
    axes.set_title(title or "evidence subgraph")
    axes.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
