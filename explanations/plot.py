"""An explanation as a picture: the subgraph of its top paths (networkx + matplotlib, written as PNG).

The explained user sits on the left and the recommended item on the right; every path runs left to right
in its own lane (the best path on top), and a node shared by several paths sits at the mean of its
places. Nodes are named as in the text (:class:`explanations.text.NodeNamer`), coloured by type; edges
point along the KG relation and carry its readable label; the best path's edges are drawn thicker.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from explanations.text import NodeNamer, explanation_sentences  # noqa: E402
from kg.atomic_files import atomic_path
from kg.model.graph import INTERACTION_RELATION  # noqa: E402
from kg.paths.path_search import KGPath, Node  # noqa: E402
from kg.paths.relation_labels import relation_label  # noqa: E402

COLORS = {"user": "#8ecae6", "item": "#ffb703", "entity": "#b7e4c7"}


def _short(text: str, width: int = 15, lines: int = 3) -> str:
    wrapped = textwrap.wrap(text, width) or [text]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "\u2026"
    return "\n".join(wrapped)


def _node_text(namer: NodeNamer, node: Node, user: Node) -> str:
    if node == user:
        return "you"
    if node[0] == "entity" and namer.label(node) is None and namer.describe(node[1]):
        return "(unnamed)\n" + _short(namer.describe(node[1]), 16, 3)  # its graph description, in brief
    return _short(namer.name(node))


def _edge_label(namer: NodeNamer, src: Node, relation: str, dst: Node) -> str:
    label = relation_label(relation)
    if relation == INTERACTION_RELATION and src[0] == "user" and dst[0] == "item" and namer.index is not None:
        rating = namer.index.rating(src[1], dst[1])
        if rating is not None:
            label += f" {rating:g}\u2605"
    return label


def explanation_graph(paths: list[KGPath]) -> tuple[nx.MultiDiGraph, dict[Node, tuple[float, float]]]:
    """The union of ``paths`` as a graph (edges in KG orientation, attribute ``relation`` and ``rank``)
    and a left-to-right lane layout."""
    g = nx.MultiDiGraph()
    places: dict[Node, list[tuple[float, float]]] = {}
    lanes = len(paths)
    for rank, path in enumerate(paths):
        y = (lanes - 1) / 2 - rank
        for k, node in enumerate(path.nodes):
            end = k in (0, len(path.nodes) - 1)
            places.setdefault(node, []).append((k / len(path), 0.0 if end else y))
        for src, rel, dst in path.edges():
            if not any(d["relation"] == rel for d in g.get_edge_data(src, dst, default={}).values()):
                g.add_edge(src, dst, relation=rel, rank=rank)
    pos = {n: (sum(p[0] for p in ps) / len(ps), sum(p[1] for p in ps) / len(ps)) for n, ps in places.items()}
    return g, pos


def plot_explanation(namer: NodeNamer, item: int, paths: list[KGPath], out: str | os.PathLike,
                     scores: list[float] | None = None, found: int = 0) -> Path:
    """Draw the explanation of ``item`` for ``namer.user`` from ``paths`` (best first) into the PNG ``out``
    (written atomically). With no path, the picture says so (``found``: paths that did not explain)."""
    target = Path(out)
    user = ("user", namer.user if namer.user is not None else -1)
    title = f"Why {namer.name(('item', item))}?"
    lines = [textwrap.fill(line, 160) for line in explanation_sentences(namer, item, paths[:3], found)]
    if scores and paths:
        lines = [f"{s}  (score drop {v:.3g})" for s, v in zip(lines, scores, strict=False)]
    caption = "\n".join(lines)
    caption_in = 0.3 + 0.17 * (caption.count("\n") + 1)
    fig_h = 1.6 + 1.45 * max(len(paths), 1) + caption_in
    fig, ax = plt.subplots(figsize=(14, fig_h), dpi=110)
    ax.set_axis_off()
    if not paths:
        ax.text(0.5, 0.5, caption, ha="center", va="center", fontsize=12, wrap=True)
    else:
        g, pos = explanation_graph(paths)
        labels = {n: _node_text(namer, n, user) for n in g.nodes}
        sizes = [6400 if n in (user, ("item", item)) else 5200 for n in g.nodes]
        nx.draw_networkx_nodes(g, pos, ax=ax, node_color=[COLORS[n[0]] for n in g.nodes], node_size=sizes,
                               edgecolors="#333333", linewidths=[2.5 if n == ("item", item) else 1.0 for n in g.nodes])
        nx.draw_networkx_labels(g, pos, labels, ax=ax, font_size=8)
        best = [(a, b) for a, b, d in g.edges(data=True) if d["rank"] == 0]
        rest = [(a, b) for a, b, d in g.edges(data=True) if d["rank"] != 0]
        for edges, width, color in ((rest, 1.2, "#888888"), (best, 2.8, "#d62828")):
            nx.draw_networkx_edges(g, pos, edgelist=edges, ax=ax, width=width, edge_color=color, arrows=True,
                                   arrowsize=16, node_size=5600, connectionstyle="arc3,rad=0.06")
        edge_labels: dict[tuple[Node, Node], list[str]] = {}
        for a, b, d in g.edges(data=True):
            edge_labels.setdefault((a, b), []).append(_edge_label(namer, a, d["relation"], b))
        nx.draw_networkx_edge_labels(g, pos, {k: " / ".join(dict.fromkeys(v)) for k, v in edge_labels.items()},
                                     ax=ax, font_size=8, rotate=False,
                                     bbox={"fc": "white", "ec": "none", "alpha": 0.85})
        xs = [p[0] for p in pos.values()]
        ys = [p[1] for p in pos.values()]
        ax.set_xlim(min(xs) - 0.12, max(xs) + 0.12)
        ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
        fig.text(0.01, 0.15 / fig_h, caption, fontsize=8.5, va="bottom", ha="left")
        fig.subplots_adjust(left=0.01, right=0.99, bottom=caption_in / fig_h, top=1 - 0.7 / fig_h)
    ax.set_title(title, fontsize=14)
    handles = [plt.Line2D([], [], marker="o", ls="", markersize=10, markerfacecolor=c, markeredgecolor="#333333",
                          label=t) for t, c in COLORS.items()]
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    try:
        with atomic_path(target, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return target
