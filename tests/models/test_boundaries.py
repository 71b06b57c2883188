"""`models/` is the PyTorch side: it imports, and exports TorchScript, without ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_models_import_and_export_torchscript_without_onnxruntime(tmp_path):
    result = run_python(
        f"""
        import sys
        sys.modules["onnxruntime"] = None  # any `import onnxruntime` now raises ImportError
        import models, models.export, models.summary
        from models.export import export_bundle, load_bundle

        path = export_bundle(
            "resnet_tiny", fmt="torchscript", cache_dir={str(tmp_path)!r}, max_batch=2
        )
        print(load_bundle(path).manifest["parity"]["passed"])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]


def test_the_registry_and_the_zoo_import_on_their_own_in_either_order():
    for first, second in (("registry", "zoo"), ("zoo", "registry")):
        result = run_python(
            f"""
            import models.{first}, models.{second}
            from models.registry import list_models
            print(len(list_models("resnet*")) > 0)
            """
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["True"]
