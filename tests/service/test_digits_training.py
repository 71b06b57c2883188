"""`models.digits` and `blockserve train-digits`: a fixed split and seeded, reproducible runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.digits import TrainConfig, digit_pixels, load_digits_split, train_digits
from service.cli import main

ONE_EPOCH = TrainConfig(epochs=1)


def test_the_held_out_split_is_fixed_stratified_and_disjoint_from_training():
    first, second = load_digits_split(), load_digits_split()

    np.testing.assert_array_equal(first.test_images, second.test_images)
    assert len(first.train_labels) == 1437 and len(first.test_labels) == 360
    assert first.test_images.dtype == np.uint8 and first.test_images.max() == 255
    assert np.bincount(first.test_labels).min() >= 35  # every digit is represented
    # train + test is a partition of the whole dataset
    from sklearn.datasets import load_digits

    everything = np.concatenate([first.train_images, first.test_images])
    dataset = digit_pixels(load_digits().images)
    assert sorted(map(bytes, everything)) == sorted(map(bytes, dataset))


def test_same_seed_reproduces_the_weights_and_another_seed_does_not(tmp_path):
    a = train_digits(tmp_path / "a.safetensors", ONE_EPOCH)
    b = train_digits(tmp_path / "b.safetensors", ONE_EPOCH)
    c = train_digits(tmp_path / "c.safetensors", TrainConfig(epochs=1, seed=1))

    assert a.weights_sha256 == b.weights_sha256
    assert c.weights_sha256 != a.weights_sha256
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["weights_sha256"] == a.weights_sha256
    assert report["test_size"] == 360 and report["split"]["seed"] == 0
    assert report["config"]["epochs"] == 1


def test_cli_writes_weights_and_fails_below_min_accuracy(tmp_path, capsys):
    out = tmp_path / "digits.safetensors"
    code = main(["train-digits", "--out", str(out), "--epochs", "1", "--min-accuracy", "1.0"])

    assert code == 1
    assert out.exists() and out.with_suffix(".json").exists()
    assert "is below --min-accuracy 100.00%" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--out", "weights.pt"], "--out must be a .safetensors file"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--min-accuracy", "1.5"], "--min-accuracy must lie in [0, 1]"),
    ],
)
def test_cli_rejects_bad_arguments(arguments, message, capsys):
    assert main(["train-digits", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_serve_cli_reports_config_errors_naming_file_and_field(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("models:\n  - {name: digits, arch: resnet_digits, instances: 0}\n")

    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "models[0] (digits).instances" in err


def test_serve_cli_rejects_bad_ports(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BLOCKSERVE_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "$BLOCKSERVE_PORT must be an integer" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must lie in 0..65535" in capsys.readouterr().err


def test_serve_prepare_loads_every_model_and_fails_if_one_failed(
    tmp_path, digits_weights, bundle_cache, capsys
):
    config = tmp_path / "models.yaml"
    config.write_text(
        f"server: {{cache_dir: {bundle_cache}}}\n"
        f"models:\n"
        f"  - {{name: digits, arch: resnet_digits, weights: {digits_weights}}}\n"
        f"  - {{name: typo, arch: resnet_digitz}}\n"
    )

    assert main(["serve", "--config", str(config), "--prepare"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "digits: READY"
    assert out[1].startswith("typo: FAILED (ModelConfigError: arch: unknown model")
    assert any(path.is_dir() for path in bundle_cache.glob("resnet_digits-onnx-*"))
