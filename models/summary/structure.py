"""The block structure of a model as diagram items, following the `shortcut` contract.

A module with a `shortcut` attribute is a residual block (docs/architecture.md): nn.Identity is
an identity skip, any other module a projection, None means no residual path. Its residual branch
is its other direct children in the order they ran; a child named `post_act` is applied to the
sum. Containers holding blocks are flattened into their children; everything else is one node.
"""

from __future__ import annotations

from typing import cast

from torch import nn
from torch.nn.modules.conv import _ConvNd

from models.summary.diagram import DiagramBlock, DiagramItem, DiagramLayer, ShortcutKind

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
POST_MERGE = "post_act"  # the name blocks give a layer applied after the `+` merge


def diagram_items(model: nn.Module, first_call: dict[nn.Module, int]) -> list[DiagramItem]:
    """Diagram items of `model`; `first_call` orders the modules that ran in the forward pass."""
    return _diagram_items(model, "", first_call)


def _describe(module: nn.Module) -> str:
    """Short node text: class name, kernel and stride for convolutions, contents of containers."""
    if isinstance(module, _CONTAINERS):
        return " → ".join(_describe(child) for child in module.children()) or type(module).__name__
    if not isinstance(module, _ConvNd):
        return type(module).__name__
    text = f"{type(module).__name__} k{'×'.join(map(str, module.kernel_size))}"
    stride = max(module.stride)
    return f"{text} s{stride}" if stride > 1 else text


def _called_children(
    module: nn.Module, first_call: dict[nn.Module, int]
) -> list[tuple[str, nn.Module]]:
    """Direct children that ran in the forward pass, in the order they completed first."""
    children = [(name, child) for name, child in module.named_children() if child in first_call]
    return sorted(children, key=lambda named: first_call[named[1]])


def _has_residual(module: nn.Module) -> bool:
    return any(_is_residual(sub) for sub in module.modules())


def _is_residual(module: nn.Module) -> bool:
    shortcut = getattr(module, "shortcut", False)
    return shortcut is None or isinstance(shortcut, nn.Module)


def _diagram_items(
    module: nn.Module, path: str, first_call: dict[nn.Module, int], name: str = ""
) -> list[DiagramItem]:
    """Residual blocks become blocks; containers holding blocks are flattened; the rest nodes.

    Nodes are named by `name` (a block's children by their attribute name), else by path.
    """
    name = name or path or type(module).__name__
    children = _called_children(module, first_call)
    if _is_residual(module):
        return [_diagram_block(module, path, name, children, first_call)]
    if not children or not _has_residual(module):
        return [DiagramLayer(path=path, name=name, description=_describe(module))]
    return _diagram_sequence(children, path, first_call)


def _diagram_block(
    block: nn.Module,
    path: str,
    name: str,
    children: list[tuple[str, nn.Module]],
    first_call: dict[nn.Module, int],
) -> DiagramBlock:
    """Branch = the direct children other than `shortcut` and `post_act` (applied to the sum)."""
    shortcut = cast(nn.Module | None, block.shortcut)  # the `shortcut` contract above
    branch = [(n, child) for n, child in children if child is not shortcut and n != POST_MERGE]
    after = [(n, child) for n, child in children if n == POST_MERGE]
    kind: ShortcutKind
    label = ""
    if shortcut is None:
        kind = "none"
    elif isinstance(shortcut, nn.Identity):
        kind = "identity"
    else:
        kind, label = "projection", _describe(shortcut)
    return DiagramBlock(
        path=path,
        name=name,
        description=type(block).__name__,
        branch=tuple(_diagram_sequence(branch, path, first_call, local_names=True)),
        shortcut=kind,
        shortcut_label=label,
        after_merge=tuple(_diagram_sequence(after, path, first_call, local_names=True)),
    )


def _diagram_sequence(
    children: list[tuple[str, nn.Module]],
    path: str,
    first_call: dict[nn.Module, int],
    *,
    local_names: bool = False,
) -> list[DiagramItem]:
    return [
        item
        for child_name, child in children
        for item in _diagram_items(
            child, _join(path, child_name), first_call, child_name if local_names else ""
        )
    ]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
