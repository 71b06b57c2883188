"""The model repository config: validation messages, path resolution, the shipped default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.commands.train import DEFAULT_WEIGHTS
from service.config import CONFIG_ENV, ConfigError, expand_path, load_config


def write(tmp_path: Path, data, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("entry", "field", "problem"),
    [
        ({"batching": {"max_batch_size": 0}}, "models[0] (digits).batching.max_batch_size",
         "greater than 0"),
        ({"format": "tflite"}, "models[0] (digits).format", "'onnx' or 'torchscript'"),
        ({"preprocess": {"channels": "cmyk"}}, "models[0] (digits).preprocess.channels", "'rgb'"),
        ({"wieghts": "w.safetensors"}, "models[0] (digits).wieghts", "Extra inputs"),
        ({"name": "bad name!"}, "models[0] (bad name!).name", "pattern"),
        ({"preprocess": {"resize": 8, "crop": 16}}, "models[0] (digits).preprocess",
         "crop 16 is larger than resize 8"),
        ({"labels": "missing.txt"}, "models[0] (digits).labels", "cannot read labels file"),
        ({"ort": {"allow_spinning": "often"}}, "models[0] (digits).ort.allow_spinning",
         "valid boolean"),
        ({"format": "torchscript", "ort": {"allow_spinning": True}}, "models[0] (digits)",
         "ort options apply to format 'onnx' only"),
    ],
)  # fmt: skip
def test_errors_name_the_file_and_the_bad_field(tmp_path, entry, field, problem):
    path = write(tmp_path, {"models": [{"name": "digits", "arch": "resnet_digits", **entry}]})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path.resolve()}: invalid model repository config")
    assert f"  {field}: " in message
    assert problem in message


def test_repository_level_errors(tmp_path):
    duplicate = write(
        tmp_path, {"models": [{"name": "a", "arch": "x"}, {"name": "a", "arch": "y"}]}
    )
    with pytest.raises(ConfigError, match="duplicate model versions: a version 1"):
        load_config(duplicate)
    default = write(
        tmp_path, {"server": {"default_model": "b"}, "models": [{"name": "a", "arch": "x"}]}
    )
    with pytest.raises(ConfigError, match="default_model 'b' is not one of the models"):
        load_config(default)
    with pytest.raises(ConfigError, match="models: List should have at least 1 item"):
        load_config(write(tmp_path, {"models": []}))


def test_unreadable_or_non_yaml_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "models: [unclosed"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- just a list"))


def test_relative_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "labels.txt").write_text("zero\none\n\n")
    monkeypatch.setenv("MY_WEIGHTS", "/opt/w")
    path = write(
        tmp_path / "conf",
        {
            "server": {"cache_dir": "cache"},
            "models": [
                {"name": "a", "arch": "resnet_digits", "weights": "w/a.safetensors",
                 "labels": "labels.txt"},
                {"name": "b", "arch": "resnet_digits", "weights": "${MY_WEIGHTS}/b.safetensors"},
                {"name": "c", "arch": "resnet_digits", "weights": "${UNSET_VAR:-/srv}/c.pt"},
            ],
        },
    )  # fmt: skip
    monkeypatch.chdir("/")
    config = load_config(path)

    base = path.resolve().parent
    assert config.server.cache_dir == base / "cache"
    assert config.model("a").weights == base / "w" / "a.safetensors"
    assert config.model("a").labels == ["zero", "one"]
    assert config.model("b").weights == Path("/opt/w/b.safetensors")
    assert config.model("c").weights == Path("/srv/c.pt")
    assert config.default_model == "a"


def test_unset_variable_without_default_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    path = write(tmp_path, {"models": [{"name": "a", "arch": "x", "weights": "${NOPE_NOT_SET}/w"}]})
    with pytest.raises(ConfigError, match="environment variable NOPE_NOT_SET is not set"):
        load_config(path)


def test_config_path_comes_from_the_environment(tmp_path, monkeypatch):
    path = write(tmp_path, {"models": [{"name": "from-env", "arch": "resnet_digits"}]})
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_config().models[0].name == "from-env"


def test_default_config_serves_trained_digits_and_untrained_resnet18(monkeypatch, tmp_path):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("BLOCKSERVE_HOME", str(tmp_path))
    config = load_config()

    assert config.default_model == "digits"
    digits, resnet18 = config.model("digits"), config.model("resnet18")
    assert digits.arch == "resnet_digits"
    assert digits.labels == [str(i) for i in range(10)]
    assert digits.weights == expand_path(DEFAULT_WEIGHTS, None)  # where train-digits writes
    assert digits.weights == tmp_path / "digits" / "digits.safetensors"
    assert resnet18.weights is None
    assert resnet18.preprocess.crop == 224
    assert config.server.cache_dir == tmp_path / "bundles"
