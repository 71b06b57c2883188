"""The model repository config: a YAML file validated with pydantic.

Relative paths (`weights`, `labels` files, `cache_dir`) are resolved against the config file's
directory after expanding `${VAR}` / `${VAR:-default}` and `~`. `${BLOCKSERVE_HOME}` defaults to
`~/.cache/blockserve`, where `blockserve train-digits` writes the digits weights by default.
Validation errors name the file and the bad field, e.g. `models[0] (digits).batching.max_queue`.
"""

from __future__ import annotations

import os
import re
from importlib import metadata, resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.export.precision import (
    GPU_PRECISIONS,
    CalibrationMethodName,
    Precision,
    precision_format_problem,
)

CONFIG_ENV = "BLOCKSERVE_CONFIG"
HOME_ENV = "BLOCKSERVE_HOME"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# What a bearer token may hold: visible ASCII, so that it fits an HTTP header as it is.
BEARER_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class ConfigError(ValueError):
    """The config file is missing, is not YAML, or does not validate."""


def blockserve_home() -> Path:
    """Where trained weights and exported bundles live unless the config says otherwise."""
    return Path(os.environ.get(HOME_ENV) or "~/.cache/blockserve").expanduser()


def blockserve_version() -> str:
    try:
        return metadata.version("blockserve")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def default_config_path() -> Path:
    """The config that ships with the package (digits + resnet18)."""
    return Path(str(resources.files("service") / "configs" / "default.yaml"))


def expand_path(text: str | Path, base_dir: Path | None) -> Path:
    """Expand `${VAR}`, `${VAR:-default}` and `~`, then resolve against `base_dir`."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name == HOME_ENV and not os.environ.get(name):
            return str(blockserve_home())
        value = os.environ.get(name) or default
        if value is None:
            raise ValueError(f"environment variable {name} is not set (in {str(text)!r})")
        return value

    path = Path(_VARIABLE.sub(substitute, str(text))).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: str | Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    return expand_path(value, base_dir)


class BatchingConfig(_Strict):
    max_batch_size: PositiveInt = 16
    max_delay_ms: Annotated[float, Field(ge=0)] = 2.0
    max_queue: PositiveInt = 256  # images waiting in one instance's queue
    # Run a batch on the event loop, without a thread hop, when its compute time (estimated from
    # batches timed at load) is at most this: small batches of tiny models. 0: never.
    inline_max_ms: Annotated[float, Field(ge=0)] = 0.25


class PreprocessConfig(_Strict):
    """Unset fields come from the architecture's `models.model_default_cfg`."""

    resize: PositiveInt | None = None  # shorter side, before the center crop
    crop: PositiveInt | tuple[PositiveInt, PositiveInt] | None = None  # size or (height, width)
    mean: list[float] | None = None
    std: list[PositiveFloat] | None = None
    channels: Literal["rgb", "gray"] | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] | None = None

    @model_validator(mode="after")
    def _check(self) -> PreprocessConfig:
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}")
        crop = (self.crop, self.crop) if isinstance(self.crop, int) else self.crop
        if self.resize is not None and crop is not None and max(crop) > self.resize:
            raise ValueError(f"crop {self.crop} is larger than resize {self.resize}")
        return self


class OrtConfig(_Strict):
    """ONNX Runtime session options of a model (`format: onnx` only)."""

    # Threads one run of a session uses; unset: the server's `ort_threads`, else ORT's default
    # (all cores). With `instances: N` on N cores, 1 keeps each instance on a core of its own.
    intra_op_threads: PositiveInt | None = None
    # Idle intra-op threads busy-wait for the next run when true: a little lower latency on
    # dedicated cores, but they steal the CPU from decoding and other models when it is shared.
    allow_spinning: bool = False


class CalibrationConfig(_Strict):
    """A reduced precision's data (`precision: int8 | fp16 | bf16`): what int8 calibrates on,
    what every reduced precision is verified on, and how close to fp32 the export requires it
    to stay."""

    # A folder of images, preprocessed as served; unset: the digits model's own data.
    images: Path | None = None
    samples: PositiveInt = 128  # int8: calibration images
    # Further images the model is verified on (digits: its whole test split).
    held_out: PositiveInt = 64
    method: CalibrationMethodName = "minmax"  # int8
    # Trained weights: share of held-out inputs whose reduced top-1 class is fp32's.
    min_top1_agreement: Annotated[float, Field(ge=0, le=1)] = 0.99
    # Random-init weights (top-1 says little): mean cosine of reduced and fp32 logits.
    min_cosine_similarity: Annotated[float, Field(ge=-1, le=1)] = 0.99

    @field_validator("images", mode="before")
    @classmethod
    def _resolve_images(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info) if isinstance(value, str | Path) else value


class VersionPolicy(_Strict):
    """Which versions of a model are served (Triton's `version_policy`): the `latest` N
    version numbers (default 1), `all`, or the `specific` ones listed. A version that becomes
    READY unloads the versions the policy no longer selects; the highest READY version answers
    requests that name none."""

    latest: PositiveInt | None = None
    all: bool = False
    specific: list[PositiveInt] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> VersionPolicy:
        rules = [self.latest is not None, self.all, self.specific is not None]
        if sum(rules) > 1:
            raise ValueError("set one of latest, all, specific")
        return self

    def selects(self, versions: list[int]) -> set[int]:
        """The versions of `versions` this policy serves."""
        if self.all:
            return set(versions)
        if self.specific is not None:
            return set(versions) & set(self.specific)
        return set(sorted(versions)[-(self.latest or 1) :])

    def admits(self, version: int) -> bool:
        """Whether `version` may be loaded at all (`specific` lists the only ones)."""
        return self.specific is None or version in self.specific


class ModelConfig(_Strict):
    name: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    # The version this entry serves; unset: 1 in a config file, the next free number when
    # loaded through the management API.
    version: PositiveInt | None = None
    version_policy: VersionPolicy = Field(default_factory=VersionPolicy)
    # The network: a registry model (`blockserve models`), or a whole `NetworkSpec` as data
    # (`models.spec`; its defaults are `models.default_cfgs.spec_default_cfg`'s). One of the two.
    arch: str | None = None
    spec: dict[str, Any] | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)  # applied to either
    weights: Path | None = None  # absent: random init, flagged untrained everywhere
    # When `weights` is missing, make it with this recipe at load (`models.recipes`, e.g.
    # `digits` trains resnet_digits from a fixed seed) instead of failing.
    weights_recipe: str | None = None
    format: Literal["onnx", "torchscript"] = "onnx"
    # The served arithmetic, verified against fp32 at export on `calibration`'s data: int8
    # (quantized, `format: onnx`), fp16 (CUDA), bf16 (CUDA, `format: torchscript`).
    precision: Precision = "fp32"
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    instances: PositiveInt = 1
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    labels: list[str] | None = None  # a list, or a file path (one label per line) in the YAML
    top_k: PositiveInt = 5
    ort: OrtConfig = Field(default_factory=OrtConfig)

    @property
    def arch_name(self) -> str:
        """The registry model's name, or `spec` for a network given as a spec."""
        return self.arch or "spec"

    @model_validator(mode="after")
    def _check_network(self) -> ModelConfig:
        if (self.arch is None) == (self.spec is None):
            raise ValueError("set one of arch (a registry model) and spec (a NetworkSpec)")
        return self

    @model_validator(mode="after")
    def _check_weights_recipe(self) -> ModelConfig:
        if self.weights_recipe is not None and self.weights is None:
            raise ValueError("weights_recipe needs `weights`: the file the recipe writes")
        if self.weights_recipe is not None and self.arch is None:
            raise ValueError("weights_recipe makes weights for a registry model: it needs arch")
        return self

    @model_validator(mode="after")
    def _check_runtime_section(self) -> ModelConfig:
        if "ort" in self.model_fields_set and self.format != "onnx":
            raise ValueError(f"ort options apply to format 'onnx' only, not {self.format!r}")
        return self

    @model_validator(mode="after")
    def _check_precision(self) -> ModelConfig:
        problem = precision_format_problem(self.precision, self.format)
        if problem is not None:
            raise ValueError(problem)
        if self.precision in GPU_PRECISIONS and self.device == "cpu":
            raise ValueError(
                f"precision {self.precision!r} runs on a CUDA device, not device 'cpu'"
            )
        if "calibration" in self.model_fields_set and self.precision == "fp32":
            raise ValueError("calibration applies to a reduced precision (int8, fp16, bf16) only")
        int8_only = {"samples", "method"} & self.calibration.model_fields_set
        if int8_only and self.precision != "int8":
            raise ValueError(f"calibration.{min(int8_only)} applies to precision 'int8' only")
        return self

    @field_validator("weights", mode="before")
    @classmethod
    def _resolve_weights(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info) if isinstance(value, str | Path) else value

    @field_validator("labels", mode="before")
    @classmethod
    def _read_labels_file(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str | Path):
            return value
        path = _resolve(value, info)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"cannot read labels file {path}: {error.strerror}") from None
        labels = [line.strip() for line in lines if line.strip()]
        if not labels:
            raise ValueError(f"labels file {path} has no labels")
        return labels


class LimitsConfig(_Strict):
    max_body_bytes: PositiveInt = 32 * 1024 * 1024  # 413 above
    max_weights_bytes: PositiveInt = 512 * 1024 * 1024  # a weights upload: 413 above
    max_image_pixels: PositiveInt = 40_000_000  # width * height, checked before decoding: 413
    max_images_per_request: PositiveInt = 64
    # Decoded size of one request's tensors (shape x datatype), checked before any data is
    # parsed: 413 above.
    max_tensor_bytes: PositiveInt = 64 * 1024 * 1024
    # Bytes of request bodies held at once across all requests (read, decoding or queued):
    # a request whose declared body does not fit gets 503 + Retry-After before it is read.
    max_inflight_body_bytes: PositiveInt = 256 * 1024 * 1024
    # Requests waiting for a decode thread beyond those being decoded: 503 + Retry-After above.
    max_decode_backlog: PositiveInt = 64


DEFAULT_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


class ImagingConfig(_Strict):
    """Image decoding: which decoders may run, and what is decoded on the event loop."""

    # Pillow format names `Image.open` may use; anything else is 415 before decoding.
    formats: tuple[str, ...] = DEFAULT_IMAGE_FORMATS
    # Bodies up to this size whose images all have at most `inline_max_pixels` pixels are
    # decoded on the event loop (no thread hop); anything larger goes to the decode pool.
    inline_max_bytes: Annotated[int, Field(ge=0)] = 16 * 1024
    inline_max_pixels: Annotated[int, Field(ge=0)] = 64 * 64

    @field_validator("formats")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.upper() for name in value)


class TlsConfig(_Strict):
    """A certificate and its key (PEM files) for HTTPS and gRPC over TLS."""

    cert_file: Path
    key_file: Path

    @field_validator("cert_file", "key_file", mode="before")
    @classmethod
    def _resolve_files(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info) if isinstance(value, str | Path) else value


class HttpConfig(_Strict):
    """HTTP connection limits: what a slow or hostile client may hold."""

    keep_alive_timeout_s: PositiveFloat = 5.0  # idle keep-alive; announced in `Keep-Alive`
    max_header_bytes: PositiveInt = 64 * 1024  # request line + headers: 431 above
    header_timeout_s: PositiveFloat = 10.0  # to receive the request line and headers: 408
    body_idle_timeout_s: PositiveFloat = 10.0  # between two chunks of a body: 408


class GrpcConfig(_Strict):
    enabled: bool = True
    port: Annotated[int, Field(ge=0, le=65535)] = 8001
    max_message_bytes: PositiveInt = 64 * 1024 * 1024


class ModelRepositoryDir(_Strict):
    """A model repository directory filled by hand, Triton-style (`service/model_directory.py`):
    `<path>/<model>/config.yaml`, versions in numbered subdirectories."""

    path: Path
    # Rescan every this many seconds and load, reload or unload what changed; 0: read at start.
    poll_interval_s: Annotated[float, Field(ge=0)] = 0.0

    @field_validator("path", mode="before")
    @classmethod
    def _resolve_path(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info) if isinstance(value, str | Path) else value


class AuthConfig(_Strict):
    """Bearer tokens (`service/auth.py`). Management operations always need the API token:
    `$BLOCKSERVE_API_TOKEN`, else `token` or `token_file`, else one generated at first start
    into `api-token` (mode 0600) in `server.state_dir`, else in `${BLOCKSERVE_HOME}`."""

    token: SecretStr | None = None
    token_file: Path | None = None
    # When set (or `$BLOCKSERVE_INFERENCE_TOKEN`), inference needs it or the API token.
    inference_token: SecretStr | None = None
    # Metadata, statistics, metrics and model listings need a token too (either one); the
    # probes `/health/live`, `/health/ready` and `grpc.health.v1` stay open.
    protect_reads: bool = False

    @field_validator("token", "inference_token")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not BEARER_TOKEN_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("a token must be visible ASCII characters, without spaces")
        return value

    @field_validator("token_file", mode="before")
    @classmethod
    def _resolve_token_file(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info) if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _one_source(self) -> AuthConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set one of token, token_file")
        return self


class ServerConfig(_Strict):
    default_model: str | None = None  # None: the first model in `models`
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cache_dir: Path = Field(default=Path("${BLOCKSERVE_HOME}/bundles"), validate_default=True)
    # Where models loaded, unloaded or made default at run time are recorded, to be served
    # again after a restart (`service/model_store.py`); unset: such changes last until exit.
    state_dir: Path | None = None
    # Models kept in a directory (Triton-style), served with those of `models`.
    model_repository: ModelRepositoryDir | None = None
    ort_threads: PositiveInt | None = None  # intra-op threads per ONNX Runtime session
    # Serving processes sharing the port, each with its own models (`service/workers.py`):
    # more than 1 lets small models' HTTP work use more cores; 1 suits models whose engine
    # already uses every core.
    workers: PositiveInt = 1
    decode_threads: PositiveInt = 2  # image decoding + preprocessing pool
    # How many nice steps the decode threads run below the engine's (Linux; 0: same priority).
    decode_niceness: Annotated[int, Field(ge=0, le=19)] = 10
    retry_after_s: PositiveInt = 1  # Retry-After sent with 503 when a queue is full
    # On SIGTERM: readiness turns false at once, new connections are still answered for
    # `drain_delay_s` (so load balancers notice), then the listener closes and requests in
    # flight get up to `shutdown_timeout_s` to finish.
    drain_delay_s: Annotated[float, Field(ge=0)] = 0.0
    shutdown_timeout_s: PositiveFloat = 30.0
    # Ready only when every configured model is READY (Triton's --strict-readiness); false:
    # when the default model is.
    strict_readiness: bool = True
    docs_enabled: bool = True  # /docs, /redoc and /openapi.json
    imaging: ImagingConfig = Field(default_factory=ImagingConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    tls: TlsConfig | None = None  # HTTPS and gRPC over TLS when set
    grpc: GrpcConfig = Field(default_factory=GrpcConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)

    @field_validator("cache_dir", "state_dir", mode="before")
    @classmethod
    def _resolve_dirs(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve(value, info) if isinstance(value, str | Path) else value


class RepositoryConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    # May be empty when `server.model_repository` is set (its models join at start).
    models: list[ModelConfig] = Field(default_factory=list)
    source: Path | None = Field(default=None, exclude=True)  # the YAML file, for messages

    @model_validator(mode="after")
    def _check_names(self) -> RepositoryConfig:
        names = [model.name for model in self.models]
        keys = [(model.name, model.version or 1) for model in self.models]
        duplicates = sorted({f"{n} version {v}" for n, v in keys if keys.count((n, v)) > 1})
        if duplicates:
            raise ValueError(f"duplicate model versions: {', '.join(duplicates)}")
        if self.server.model_repository is not None:
            return self  # the directory's models are known at start only
        if not names:
            raise ValueError(
                "models: List should have at least 1 item (or set server.model_repository)"
            )
        default = self.server.default_model
        if default is not None and default not in names:
            raise ValueError(f"server.default_model {default!r} is not one of the models {names}")
        return self

    @property
    def default_model(self) -> str:
        return self.server.default_model or self.models[0].name

    def model(self, name: str) -> ModelConfig:
        """The entry of model `name` with the highest version."""
        return max(
            (model for model in self.models if model.name == name),
            key=lambda model: model.version or 1,
        )


def parse_config(data: Any, *, source: Path | None = None) -> RepositoryConfig:
    """Validate already-parsed YAML; relative paths resolve against `source`'s directory."""
    where = str(source) if source is not None else "<config>"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'models' (and 'server'), got {data!r}")
    base_dir = source.parent if source is not None else Path.cwd()
    try:
        config = RepositoryConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        problems = _describe(error, data)
        raise ConfigError(f"{where}: invalid model repository config:\n{problems}") from None
    return config.model_copy(update={"source": source})


def load_config(path: str | Path | None = None) -> RepositoryConfig:
    """Load `path`, else `$BLOCKSERVE_CONFIG`, else the packaged default config."""
    source = Path(path or os.environ.get(CONFIG_ENV) or default_config_path()).expanduser()
    return parse_config(read_yaml(source, source), source=source.resolve())


def read_yaml(path: Path, where: str | Path) -> Any:
    """The YAML document in `path`; `ConfigError` naming `where` when it cannot be read or
    parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{where}: cannot read config: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {error}") from None


def validation_problems(error: ValidationError, data: Any) -> list[str]:
    """One `field: problem (got value)` per error, the field named as in `_field_path`."""
    problems = []
    for item in error.errors():
        field = _field_path(item["loc"], data)
        got = f" (got {item['input']!r})" if item["loc"] and item["type"] != "missing" else ""
        problems.append(f"{field or '<root>'}: {item['msg']}{got}")
    return problems


def _describe(error: ValidationError, data: dict) -> str:
    return "\n".join(f"  {problem}" for problem in validation_problems(error, data))


def _field_path(loc: tuple, data: Any) -> str:
    """`('models', 0, 'batching', 'max_queue')` -> `models[0] (digits).batching.max_queue`."""
    parts: list[str] = []
    node: Any = data
    for key in loc:
        if isinstance(key, int):
            parts[-1] += f"[{key}]"
            node = node[key] if isinstance(node, list) and key < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts[-1] += f" ({node['name']})"
            continue
        parts.append(str(key))
        node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)
