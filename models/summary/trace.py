"""`summarize`: one hooked forward pass on a dummy input, leaving the model exactly as it was."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral

import torch
from torch import Tensor, nn

from models.summary.costs import kernel_size, mult_adds
from models.summary.report import Shape, Summary, SummaryRow
from models.summary.structure import diagram_items

PASS_BATCH = 2  # >1 so that BatchNorm in train mode would not fail on the dummy batch


@dataclass(frozen=True)
class _Call:
    """One completed module call, as seen by a forward hook."""

    module: nn.Module
    output_shapes: tuple[Shape, ...]
    kernel_size: Shape | None
    mult_adds: int


def summarize(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]],
    batch_size: int = -1,
    *,
    device: torch.device | str | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
) -> Summary:
    """Summarise `model` on inputs of shape (C, *spatial) (or a list of them, one per input).

    Rows: one per call of a leaf module (or of a module owning parameters directly), then the
    root, in forward-completion order. Shapes show `batch_size` as their first dim. Train/eval
    flags and buffers are restored afterwards; no hook stays registered.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    input_sizes = _input_sizes(input_size)
    is_int = isinstance(batch_size, int) and not isinstance(batch_size, bool)
    if not is_int or not (batch_size == -1 or batch_size > 0):
        raise ValueError(f"batch_size must be -1 or a positive int, got {batch_size!r}")
    inputs = _dummy_inputs(input_sizes, _dtypes(dtypes, len(input_sizes)), _device(model, device))

    calls: list[_Call] = []
    with _unchanged(model), _hooked(model, calls, batch_size), torch.no_grad():
        model.eval()
        try:
            model(*inputs)
        except Exception as error:
            shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
            raise RuntimeError(
                f"summarize: forward pass of {type(model).__name__} failed on dummy input "
                f"{shapes}: {error}"
            ) from error

    names = {module: name for name, module in model.named_modules(remove_duplicate=False)}
    rows = _rows(calls, model, names)
    total, trainable = _unique_param_counts(_row_modules(calls, model))
    first_call: dict[nn.Module, int] = {}
    for index, call in enumerate(calls):
        first_call.setdefault(call.module, index)
    return Summary(
        rows=rows,
        input_sizes=input_sizes,
        batch_size=batch_size,
        total_params=total,
        trainable_params=trainable,
        diagram=diagram_items(model, first_call),
    )


def _input_sizes(input_size: object) -> tuple[Shape, ...]:
    if not isinstance(input_size, Sequence) or isinstance(input_size, str) or not input_size:
        raise ValueError(f"input_size must be (C, *spatial) or a list of them, got {input_size!r}")
    sizes = [input_size] if not isinstance(input_size[0], Sequence) else list(input_size)
    for size in sizes:
        if (
            not isinstance(size, Sequence)
            or not size
            or not all(
                isinstance(d, Integral) and not isinstance(d, bool) and int(d) > 0 for d in size
            )
        ):
            raise ValueError(
                f"input_size entries must be non-empty tuples of positive ints (C, *spatial), "
                f"got {size!r}"
            )
    return tuple(tuple(int(d) for d in size) for size in sizes)


def _dtypes(dtypes: Sequence[torch.dtype] | None, count: int) -> list[torch.dtype]:
    if dtypes is None:
        return [torch.float32] * count
    dtypes = list(dtypes)
    if len(dtypes) != count or not all(isinstance(d, torch.dtype) for d in dtypes):
        raise ValueError(
            f"dtypes must be {count} torch.dtype value(s), one per input, got {dtypes}"
        )
    return dtypes


def _device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    tensor: Tensor | None = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _dummy_inputs(
    sizes: tuple[Shape, ...], dtypes: list[torch.dtype], device: torch.device
) -> list[Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for size, dtype in zip(sizes, dtypes, strict=True):
        shape = (PASS_BATCH, *size)
        if dtype.is_floating_point or dtype.is_complex:
            x = torch.rand(shape, generator=generator).to(dtype)
        else:
            x = torch.zeros(shape, dtype=dtype)
        inputs.append(x.to(device))
    return inputs


@contextmanager
def _unchanged(model: nn.Module) -> Iterator[None]:
    """Restore every module's training flag and every buffer (object and values) on exit."""
    modes = [(module, module.training) for module in model.modules()]
    buffers = [
        (module, name, buffer, buffer.detach().clone())
        for module in model.modules()
        for name, buffer in module.named_buffers(recurse=False)
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, name, buffer, saved in buffers:
                buffer.copy_(saved)
                module._buffers[name] = buffer
        for module, training in modes:
            module.training = training


@contextmanager
def _hooked(model: nn.Module, calls: list[_Call], batch_size: int) -> Iterator[None]:
    """Record every module call into `calls`; all hooks are removed on exit, even on error."""

    def record(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        outputs = list(_tensors(output))
        first_in = next(_tensors((args, kwargs)), None)
        first_out = outputs[0] if outputs else None
        calls.append(
            _Call(
                module=module,
                output_shapes=tuple(_shown_shape(y, batch_size) for y in outputs),
                kernel_size=kernel_size(module, first_out),
                mult_adds=mult_adds(module, first_in, first_out),
            )
        )

    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_hook(record, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _tensors(value: object) -> Iterator[Tensor]:
    """Tensors in a (nested) tuple / list / dict output, in order."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _shown_shape(tensor: Tensor, batch_size: int) -> Shape:
    shape = tuple(tensor.shape)
    return (batch_size, *shape[1:]) if shape else shape


def _is_row(module: nn.Module, root: nn.Module) -> bool:
    has_children = next(module.children(), None) is not None
    owns_params = next(module.parameters(recurse=False), None) is not None
    return module is root or not has_children or owns_params


def _row_modules(calls: list[_Call], root: nn.Module) -> Iterator[nn.Module]:
    return (call.module for call in calls if _is_row(call.module, root))


def _rows(calls: list[_Call], root: nn.Module, names: dict[nn.Module, str]) -> list[SummaryRow]:
    rows: list[SummaryRow] = []
    for call in calls:
        if not _is_row(call.module, root):
            continue
        params = list(call.module.parameters(recurse=False))
        class_name = type(call.module).__name__
        rows.append(
            SummaryRow(
                name=f"{class_name}-{len(rows) + 1}",
                type=class_name,
                path=names.get(call.module, ""),
                output_shapes=call.output_shapes,
                params=sum(p.numel() for p in params),
                trainable=sum(p.numel() for p in params if p.requires_grad),
                kernel_size=call.kernel_size,
                mult_adds=call.mult_adds,
            )
        )
    return rows


def _unique_param_counts(modules: Iterator[nn.Module]) -> tuple[int, int]:
    """(total, trainable) over the modules' own parameters, each shared tensor counted once."""
    seen: dict[int, nn.Parameter] = {}
    for module in modules:
        for param in module.parameters(recurse=False):
            seen.setdefault(id(param), param)
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return total, trainable
