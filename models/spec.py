"""Declarative, typed network specs that round-trip exactly through dict / JSON / YAML.

A `NetworkSpec` describes a classifier as stem → stages → head. Every family (ResNet, ConvNeXt,
MobileNet, EfficientNet, MDNC encoders) and every dimension (1d/2d/3d) is one of these; the
builder (`models.builder.build_network`) turns it into an `nn.Module`.

Component names (stem kinds, block types, norms, activations) are resolved by the builder; the
spec checks structure and value ranges and names the offending field in every error.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "DROP_PATH_SCHEDULES",
    "HEAD_POOLS",
    "PRE_POOL_KINDS",
    "HeadSpec",
    "NetworkSpec",
    "SpecError",
    "StageSpec",
    "StemSpec",
]

# "linspace": rate * i / (n - 1), the last block gets the full rate (torchvision ConvNeXt, timm).
# "index_over_total": rate * i / n (torchvision EfficientNet).
DROP_PATH_SCHEDULES = ("linspace", "index_over_total")
# Before global pooling: nothing, norm→act (pre-activation nets), or 1×1 conv→norm→act
# (MobileNet / EfficientNet "last conv").
PRE_POOL_KINDS = ("none", "norm_act", "conv_norm_act")
HEAD_POOLS = ("avg", "max")

_JSON_SCALARS = (str, int, float, bool, type(None))


class SpecError(ValueError):
    """An invalid spec value; the message starts with the dotted path of the field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def _check_int(path: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"must be an int, got {value!r}")
    if value < minimum:
        raise SpecError(path, f"must be >= {minimum}, got {value}")


def _check_choice(path: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise SpecError(path, f"must be one of {list(allowed)}, got {value!r}")


def _check_str(path: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise SpecError(path, f"must be a non-empty string, got {value!r}")


def _plain(path: str, value: Any) -> Any:
    """Return `value` as plain JSON data (tuples become lists) or raise naming the field."""
    if isinstance(value, _JSON_SCALARS):
        if isinstance(value, float) and value != value:
            raise SpecError(path, "NaN is not allowed")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(f"{path}[{i}]", item) for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise SpecError(path, f"keys must be strings, got {key!r}")
        return {key: _plain(f"{path}.{key}", item) for key, item in value.items()}
    raise SpecError(path, f"must be JSON data (str/int/float/bool/None/list/dict), got {value!r}")


def _kwargs(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(path, f"must be a dict, got {value!r}")
    return _plain(path, value)


@dataclass
class StemSpec:
    """The input layer(s). `kind` names a stem constructor in `models.builder.STEM_TYPES`."""

    kind: str = "conv"
    width: int = 64
    kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str = "stem") -> None:
        _check_str(f"{path}.kind", self.kind)
        _check_int(f"{path}.width", self.width, 1)
        self.kwargs = _kwargs(f"{path}.kwargs", self.kwargs)


@dataclass
class StageSpec:
    """`depth` blocks of type `block` with output channels `width`; the first one has `stride`.

    With `downsample` set (a name in `models.builder.DOWNSAMPLE_TYPES`, built with
    `downsample_kwargs`), a separate transition layer does the striding and channel change and
    every block runs at stride 1 with in == out == width (ConvNeXt).
    """

    block: str
    width: int
    depth: int
    stride: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)
    downsample: str | None = None
    downsample_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        _check_str(f"{path}.block", self.block)
        _check_int(f"{path}.width", self.width, 1)
        _check_int(f"{path}.depth", self.depth, 1)
        _check_int(f"{path}.stride", self.stride, 1)
        self.kwargs = _kwargs(f"{path}.kwargs", self.kwargs)
        if self.downsample is not None:
            _check_str(f"{path}.downsample", self.downsample)
        self.downsample_kwargs = _kwargs(f"{path}.downsample_kwargs", self.downsample_kwargs)


@dataclass
class HeadSpec:
    """Optional pre-pool layer → global pool → optional pooled norm → dropout → linear."""

    num_classes: int = 1000
    pre_pool: str = "none"
    pre_pool_width: int | None = None
    norm: str = "batch"
    act: str = "relu"
    norm_kwargs: dict[str, Any] = field(default_factory=dict)
    pool: str = "avg"
    pooled_norm: str | None = None
    dropout: float = 0.0

    def validate(self, path: str = "head") -> None:
        _check_int(f"{path}.num_classes", self.num_classes, 1)
        _check_choice(f"{path}.pre_pool", self.pre_pool, PRE_POOL_KINDS)
        if self.pre_pool == "conv_norm_act":
            if self.pre_pool_width is None:
                raise SpecError(
                    f"{path}.pre_pool_width", "is required when pre_pool='conv_norm_act'"
                )
            _check_int(f"{path}.pre_pool_width", self.pre_pool_width, 1)
        elif self.pre_pool_width is not None:
            raise SpecError(
                f"{path}.pre_pool_width",
                f"must be None unless pre_pool='conv_norm_act' (pre_pool={self.pre_pool!r})",
            )
        _check_str(f"{path}.norm", self.norm)
        _check_str(f"{path}.act", self.act)
        self.norm_kwargs = _kwargs(f"{path}.norm_kwargs", self.norm_kwargs)
        _check_choice(f"{path}.pool", self.pool, HEAD_POOLS)
        if self.pooled_norm is not None:
            _check_str(f"{path}.pooled_norm", self.pooled_norm)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise SpecError(f"{path}.dropout", f"must be a float, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"{path}.dropout", f"must be in [0, 1), got {self.dropout}")
        self.dropout = float(self.dropout)


@dataclass(kw_only=True)
class NetworkSpec:
    """A whole classifier: `dims`-d input with `in_chans` channels → logits (B, num_classes)."""

    dims: int = 2
    in_chans: int = 3
    stem: StemSpec = field(default_factory=StemSpec)
    stages: list[StageSpec]
    head: HeadSpec = field(default_factory=HeadSpec)
    drop_path_rate: float = 0.0
    drop_path_schedule: str = "linspace"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_int("dims", self.dims, 1)
        _check_choice("dims", self.dims, (1, 2, 3))
        _check_int("in_chans", self.in_chans, 1)
        if not isinstance(self.stem, StemSpec):
            raise SpecError("stem", f"must be a StemSpec, got {type(self.stem).__name__}")
        self.stem.validate("stem")
        if not isinstance(self.stages, list) or not self.stages:
            raise SpecError("stages", f"must be a non-empty list of StageSpec, got {self.stages!r}")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, StageSpec):
                raise SpecError(f"stages[{i}]", f"must be a StageSpec, got {type(stage).__name__}")
            stage.validate(f"stages[{i}]")
        if not isinstance(self.head, HeadSpec):
            raise SpecError("head", f"must be a HeadSpec, got {type(self.head).__name__}")
        self.head.validate("head")
        rate = self.drop_path_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise SpecError("drop_path_rate", f"must be a float in [0, 1), got {rate!r}")
        self.drop_path_rate = float(rate)
        _check_choice("drop_path_schedule", self.drop_path_schedule, DROP_PATH_SCHEDULES)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def num_features(self) -> int:
        """Channels entering the classifier (after the optional pre-pool conv)."""
        return self.head.pre_pool_width or self.stages[-1].width

    def drop_path_rates(self) -> list[list[float]]:
        """Per-stage lists of per-block stochastic-depth rates, following the schedule."""
        total = sum(stage.depth for stage in self.stages)
        steps = max(total - 1 if self.drop_path_schedule == "linspace" else total, 1)
        rates, first = [], 0
        for stage in self.stages:
            blocks = range(first, first + stage.depth)
            rates.append([self.drop_path_rate * index / steps for index in blocks])
            first += stage.depth
        return rates

    def with_overrides(self, **overrides: Any) -> NetworkSpec:
        """A validated copy with `overrides` applied.

        Keys: `num_classes` (→ head.num_classes); any top-level field (`in_chans`, `dims`,
        `drop_path_rate`, `stages`, ...), where a dict given for `stem` / `head` updates only the
        fields it names; dotted paths into the nested data (`**{"head.dropout": 0.1}`,
        `**{"stages.0.depth": 3}`). Unknown keys raise TypeError listing the valid ones.
        """
        data = self.to_dict()
        top_level = [f.name for f in dataclasses.fields(NetworkSpec)]
        for key, value in overrides.items():
            value = _as_data(value)
            if key == "num_classes":
                data["head"]["num_classes"] = value
            elif key in ("stem", "head") and isinstance(value, dict):
                data[key].update(value)
            elif key == "stages" and isinstance(value, (list, tuple)):
                data[key] = [_as_data(stage) for stage in value]
            elif key in top_level:
                data[key] = value
            elif "." in key and key.split(".")[0] in top_level:
                _set_path(data, key, value)
            else:
                raise TypeError(
                    f"unknown override {key!r}; valid: num_classes, {', '.join(top_level)},"
                    " or a dotted path such as 'head.dropout' or 'stages.0.depth'"
                )
        return NetworkSpec.from_dict(data)

    # --- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        data = _fields(cls, data, "")
        if "stages" not in data:
            raise SpecError("stages", "is required")
        if not isinstance(data["stages"], list):
            raise SpecError("stages", f"must be a list, got {data['stages']!r}")
        data["stages"] = [
            StageSpec(**_fields(StageSpec, stage, f"stages[{i}]"))
            for i, stage in enumerate(data["stages"])
        ]
        if "stem" in data:
            data["stem"] = StemSpec(**_fields(StemSpec, data["stem"], "stem"))
        if "head" in data:
            data["head"] = HeadSpec(**_fields(HeadSpec, data["head"], "head"))
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> NetworkSpec:
        return cls.from_dict(yaml.safe_load(text))


def _fields(cls: type, data: Any, path: str) -> dict[str, Any]:
    """Check `data` is a dict whose keys are fields of dataclass `cls` (required ones present)."""
    where = path or cls.__name__
    if not isinstance(data, dict):
        raise SpecError(where, f"must be a mapping, got {data!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            prefix = f"{path}." if path else ""
            raise SpecError(f"{prefix}{key}", f"unknown field; {cls.__name__} has {sorted(known)}")
    for name, spec_field in known.items():
        no_default = spec_field.default is dataclasses.MISSING
        if no_default and spec_field.default_factory is dataclasses.MISSING and name not in data:
            raise SpecError(f"{path}.{name}" if path else name, "is required")
    return dict(data)


def _as_data(value: Any) -> Any:
    is_instance = dataclasses.is_dataclass(value) and not isinstance(value, type)
    return dataclasses.asdict(value) if is_instance else value


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at a dotted `path` ("stages.1.kwargs.groups") inside nested dicts/lists."""
    *parents, last = path.split(".")
    node: Any = data
    for depth, part in enumerate([*parents, last]):
        where = ".".join(path.split(".")[: depth + 1])
        key: str | int = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise TypeError(f"override {path!r}: {where!r} is not an index below {len(node)}")
            key = int(part)
        elif not isinstance(node, dict) or (part not in node and depth < len(parents)):
            raise TypeError(f"override {path!r}: {where!r} does not exist")
        if depth == len(parents):
            node[key] = value
        else:
            node = node[key]
