"""LitServe, setup 2: blockserve's exact ONNX file and preprocessing, LitServe batching on.

Isolates server overhead: the model file comes from the blockserve bundle, images are decoded
and preprocessed by blockserve's own `service.imaging.decode_image` (same draft decoding,
resize, crop and normalisation) into a preallocated batch, and ONNX Runtime runs with the
same session options, one LitServe inference worker per blockserve instance. The request
carries the JPEG as a multipart file upload, the closest LitServe gets to a raw body (its HTTP
layer only parses JSON or forms).

    python litserve_onnx.py --port 8102 --bundle DIR --repo /work/main --max-batch-size 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import litserve as ls
import numpy as np
import onnxruntime as ort


class OnnxClassifierAPI(ls.LitAPI):
    def __init__(
        self, bundle: Path, allow_spinning: bool, intra_op_threads: int | None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.allow_spinning = allow_spinning
        self.intra_op_threads = intra_op_threads

    def setup(self, device):
        from service.imaging import Preprocess, decode_image  # the blockserve repo, on sys.path

        manifest = json.loads((self.bundle / "manifest.json").read_text())
        self.preprocess = Preprocess(**_tuples(manifest["preprocess"]))
        self.decode_image = decode_image
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spinning = str(int(self.allow_spinning))
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        model_file = self.bundle / manifest.get("model_file", "model.onnx")
        self.session = ort.InferenceSession(str(model_file), options, ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.pool = ThreadPoolExecutor(os.cpu_count())

    def decode_request(self, request):
        return request["content"].file.read()

    def batch(self, blobs):
        images = np.empty((len(blobs), *self.preprocess.input_shape), np.float32)  # (B, C, H, W)

        def decode(index: int) -> None:
            self.decode_image(blobs[index], self.preprocess, 40_000_000, images[index])

        list(self.pool.map(decode, range(len(blobs))))
        return images

    def predict(self, x):
        logits = self.session.run(None, {self.input_name: x})[0]  # (B, classes)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        top = np.argsort(output)[::-1][:5]
        return {"predictions": [{"index": int(i), "score": float(output[i])} for i in top]}


def _tuples(preprocess: dict) -> dict:
    return {key: tuple(v) if isinstance(v, list) else v for key, v in preprocess.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--repo", type=Path, required=True, help="blockserve checkout")
    parser.add_argument("--allow-spinning", type=int, choices=(0, 1), default=1)
    parser.add_argument("--intra-op-threads", type=int, help="ONNX Runtime's default if unset")
    parser.add_argument("--workers", type=int, default=1, help="inference worker processes")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo))
    inherited = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.repo), inherited]))
    api = OnnxClassifierAPI(
        args.bundle,
        bool(args.allow_spinning),
        args.intra_op_threads,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers, timeout=30)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
