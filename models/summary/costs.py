"""Per-call cost rules: kernel size and mult-adds of one module call.

Mult-adds are counted per sample (batch-independent), bias additions excluded:
- convolution: output elements * in_channels / groups * prod(kernel_size)
  (transposed convolution: input elements * out_channels / groups * prod(kernel_size));
- linear: output elements * in_features.
Every other module (normalisation, activation, pooling, upsampling, ...) reports 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.pooling import _AvgPoolNd, _LPPoolNd, _MaxPoolNd

MultAddsRule = Callable[[Any, Tensor, Tensor], int]
"""Takes a module of a type the rule is registered for."""

_MULT_ADDS: dict[type[nn.Module], MultAddsRule] = {}
_KERNEL_TYPES = (_ConvNd, _MaxPoolNd, _AvgPoolNd, _LPPoolNd)


def mult_adds_rule(*types: type[nn.Module]) -> Callable[[MultAddsRule], MultAddsRule]:
    """Register `rule(module, first_input, first_output) -> mult-adds per sample` for `types`."""

    def register(rule: MultAddsRule) -> MultAddsRule:
        _MULT_ADDS.update(dict.fromkeys(types, rule))
        return rule

    return register


def _per_sample(tensor: Tensor) -> int:
    return tensor.shape[1:].numel()


@mult_adds_rule(_ConvNd)
def _conv(module: _ConvNd, x: Tensor, y: Tensor) -> int:
    kernel = math.prod(module.kernel_size)
    if module.transposed:
        return _per_sample(x) * module.out_channels // module.groups * kernel
    return _per_sample(y) * module.in_channels // module.groups * kernel


@mult_adds_rule(nn.Linear)
def _linear(module: nn.Linear, x: Tensor, y: Tensor) -> int:
    return _per_sample(y) * module.in_features


def mult_adds(module: nn.Module, x: Tensor | None, y: Tensor | None) -> int:
    """Mult-adds per sample of one call of `module` (0 without a rule or without tensors)."""
    if x is None or y is None or y.dim() == 0:
        return 0
    for kind in type(module).__mro__:
        rule = _MULT_ADDS.get(kind)
        if rule is not None:
            return rule(module, x, y)
    return 0


def kernel_size(module: nn.Module, y: Tensor | None) -> tuple[int, ...] | None:
    """Kernel size of a convolution or pooling layer as one int per spatial dim, else None."""
    if not isinstance(module, _KERNEL_TYPES):
        return None
    # torch declares `kernel_size` on the concrete pooling classes only, not on their bases
    size = cast(int | tuple[int, ...], module.kernel_size)
    if isinstance(size, int):
        dims = max(y.dim() - 2, 1) if y is not None else 1
        return (size,) * dims
    return tuple(int(k) for k in size)
