"""Block-structure diagrams: a small item tree (built by `summarize`) rendered as Mermaid.

A residual block is drawn like the MDNC seed: its residual branch as a chain of nodes, a
`plus(("+")):::diagramop` merge, and the skip edge `in --> plus` (identity) or
`in --> pconv[Projection<br>...] --> plus` (projection). A lone block is drawn flat, exactly like
the seed; inside a network every block becomes a subgraph.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Literal

ShortcutKind = Literal["identity", "projection", "none"]

MERGE_CLASS = "classDef diagramop fill:#FFB11B, stroke:#AF811B;"
TERMINAL = '((" "))'
MERGE = '(("+")):::diagramop'
# mermaid.js refuses larger diagrams by default (its `maxEdges` and `maxTextSize` settings).
MAX_EDGES = 500
MAX_TEXT = 50_000
# Words the Mermaid flowchart grammar treats as keywords when used as a node id.
_RESERVED_IDS = {
    "end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click",
    "linkstyle", "default", "direction", "interpolate", "call", "href",
}  # fmt: skip
_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;"}


@dataclass(frozen=True)
class DiagramLayer:
    """A module drawn as one node."""

    path: str  # qualified module name
    name: str
    description: str  # e.g. "InstanceNorm1d → PReLU → Conv1d k3 s2"

    @property
    def label(self) -> str:
        return f"{self.name}\n{self.description}"


@dataclass(frozen=True)
class DiagramBlock:
    """A module with a `shortcut` attribute: residual branch + skip path."""

    path: str  # qualified module name, "" for the root
    name: str
    description: str  # the block's class name
    branch: tuple[DiagramItem, ...]
    shortcut: ShortcutKind
    shortcut_label: str = ""  # the projection's description
    after_merge: tuple[DiagramItem, ...] = ()  # layers applied to the sum, e.g. `post_act`

    @property
    def label(self) -> str:
        return f"{self.name}\n{self.description}"

    def compacted(self) -> DiagramBlock:
        """The same block with its whole residual branch drawn as a single node."""
        branch = (
            DiagramLayer(
                path=f"{self.path}.branch" if self.path else "branch",
                name="branch",
                description=" → ".join(item.description for item in self.branch),
            ),
        )
        return replace(
            self,
            branch=branch if self.branch else (),
            after_merge=tuple(_compacted(item) for item in self.after_merge),
        )


DiagramItem = DiagramLayer | DiagramBlock


def item_to_json(item: DiagramItem) -> dict:
    """A plain dict of a diagram item (blocks nest their branch and after-merge items)."""
    if isinstance(item, DiagramLayer):
        return {
            "kind": "layer",
            "path": item.path,
            "name": item.name,
            "description": item.description,
        }
    return {
        "kind": "block",
        "path": item.path,
        "name": item.name,
        "description": item.description,
        "branch": [item_to_json(child) for child in item.branch],
        "shortcut": item.shortcut,
        "shortcut_label": item.shortcut_label,
        "after_merge": [item_to_json(child) for child in item.after_merge],
    }


def item_from_json(data: dict) -> DiagramItem:
    """The inverse of `item_to_json`."""
    if data["kind"] == "layer":
        return DiagramLayer(data["path"], data["name"], data["description"])
    return DiagramBlock(
        path=data["path"],
        name=data["name"],
        description=data["description"],
        branch=tuple(item_from_json(child) for child in data["branch"]),
        shortcut=data["shortcut"],
        shortcut_label=data["shortcut_label"],
        after_merge=tuple(item_from_json(child) for child in data["after_merge"]),
    )


def escape_label(text: str) -> str:
    """Mermaid-safe label text: entity codes for quote/angle/hash, `\\n` becomes `<br>`."""
    escaped = re.sub(r'[#"<>]', lambda match: _ESCAPES[match.group()], text)
    return escaped.replace("\n", "<br>")


@dataclass
class _Graph:
    """Nodes (with their subgraph), subgraphs and edges, in insertion order."""

    nodes: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # (shape, subgraph)
    subgraphs: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # (label, parent)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def new_id(self, hint: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", hint) or "node"
        if base[0].isdigit() or base.lower() in _RESERVED_IDS:
            base = f"n_{base}"
        candidate, suffix = base, 2
        while candidate in self.nodes or candidate in self.subgraphs:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        return candidate

    def add_node(self, hint: str, shape: str, subgraph: str | None) -> str:
        node_id = self.new_id(hint)
        self.nodes[node_id] = (shape, subgraph)
        return node_id

    def add_subgraph(self, hint: str, label: str, parent: str | None) -> str:
        sg_id = self.new_id(f"sg_{hint}")
        self.subgraphs[sg_id] = (label, parent)
        return sg_id


def _box(label: str) -> str:
    return f'["{escape_label(label)}"]'


def _add(graph: _Graph, item: DiagramItem, prev: str, subgraph: str | None, flat: bool) -> str:
    """Add `item` after node `prev`; return the node its output leaves from."""
    if isinstance(item, DiagramLayer):
        node = graph.add_node(item.path, _box(item.label), subgraph)
        graph.edges.append((prev, node))
        return node
    inner = subgraph if flat else graph.add_subgraph(item.path, item.label, subgraph)
    end = prev
    for child in item.branch:
        end = _add(graph, child, end, inner, flat=False)
    if item.shortcut != "none":
        plus = graph.add_node(_join(item.path, "plus"), MERGE, inner)
        graph.edges.append((end, plus))
        if item.shortcut == "projection":
            label = "Projection\n" + item.shortcut_label
            pconv = graph.add_node(_join(item.path, "pconv"), _box(label), inner)
            graph.edges += [(prev, pconv), (pconv, plus)]
        else:
            graph.edges.append((prev, plus))
        end = plus
    for child in item.after_merge:
        end = _add(graph, child, end, inner, flat=False)
    return end


def _join(path: str, name: str) -> str:
    return f"{path}_{name}" if path else name


def _chains(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Cover the edges, in order, with paths: each path greedily follows the next unused edge."""
    outgoing: dict[str, deque[int]] = defaultdict(deque)  # front = earliest unused edge
    for index, (source, _) in enumerate(edges):
        outgoing[source].append(index)
    used = [False] * len(edges)
    chains = []
    for index, (source, target) in enumerate(edges):
        if used[index]:
            continue
        used[outgoing[source].popleft()] = True
        chain = [source, target]
        while outgoing[chain[-1]]:
            step = outgoing[chain[-1]].popleft()
            used[step] = True
            chain.append(edges[step][1])
        chains.append(chain)
    return chains


def _subgraph_lines(graph: _Graph) -> list[str]:
    """Nested `subgraph ... end` sections declaring each subgraph's own nodes."""
    members: dict[str | None, list[str]] = defaultdict(list)
    for node, (shape, subgraph) in graph.nodes.items():
        members[subgraph].append(f"{node}{shape}")
    nested: dict[str | None, list[str]] = defaultdict(list)
    for sg_id, (_, parent) in graph.subgraphs.items():
        nested[parent].append(sg_id)

    def section(sg_id: str, indent: str) -> list[str]:
        label = graph.subgraphs[sg_id][0]
        lines = [f'{indent}subgraph {sg_id}["{escape_label(label)}"]']
        lines += [f"{indent}    {node}" for node in members[sg_id]]
        for child in nested[sg_id]:
            lines += section(child, indent + "    ")
        return [*lines, f"{indent}end"]

    return [line for sg_id in nested[None] for line in section(sg_id, "")]


def _compacted(item: DiagramItem) -> DiagramItem:
    return item.compacted() if isinstance(item, DiagramBlock) else item


def render_mermaid(items: list[DiagramItem], detail: str = "auto") -> str:
    """`flowchart TB` from `in` through `items` to `out`; a lone root block is drawn flat.

    detail: "full" draws every direct child of a residual branch, "compact" one node per branch,
    "auto" is "full" unless that exceeds mermaid.js's default edge or text limits.
    """
    if detail not in ("auto", "full", "compact"):
        raise ValueError(f"detail must be 'auto', 'full' or 'compact', got {detail!r}")
    if detail == "compact":
        return _render([_compacted(item) for item in items])
    text = _render(items)
    if detail == "auto" and (text.count(" --> ") > MAX_EDGES or len(text) > MAX_TEXT):
        return _render([_compacted(item) for item in items])
    return text


def _render(items: list[DiagramItem]) -> str:
    graph = _Graph()
    start = graph.add_node("in", TERMINAL, None)
    flat = len(items) == 1 and isinstance(items[0], DiagramBlock) and items[0].path == ""
    end = start
    for item in items:
        end = _add(graph, item, end, None, flat=flat)
    graph.edges.append((end, graph.add_node("out", TERMINAL, None)))

    lines = ["flowchart TB", *_subgraph_lines(graph)]
    declared = {node for node, (_, sg) in graph.nodes.items() if sg is not None}
    for chain in _chains(graph.edges):
        parts = []
        for node in chain:
            parts.append(node if node in declared else node + graph.nodes[node][0])
            declared.add(node)
        lines.append(" --> ".join(parts))
    lines.append(MERGE_CLASS)
    return "\n".join(lines)
