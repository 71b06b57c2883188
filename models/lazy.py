"""Package attributes imported on first use: what needs PyTorch loads only when asked for, so
that reading bundles, specs and summaries works where torch is not installed (the slim image)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, modules: dict[str, str], *, first: Iterable[str] = ()
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports attribute `name` from `modules[name]`,
    after importing the modules in `first` (e.g. ones that register themselves)."""

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in first:
            import_module(module)
        return getattr(import_module(modules[name]), name)

    return __getattr__
