"""LitServe, setup 1: its documented image classifier (torchvision ResNet-18, eager PyTorch).

Shaped like LitServe's own image-classifier example and benchmark server: JSON bodies
`{"image_data": "<base64 JPEG>"}`, decoding fanned out to a thread pool in `batch()`, the
torchvision `ResNet18_Weights.DEFAULT.transforms()` preprocessing (resize 256, crop 224),
random-init weights (nothing is downloaded here), batching on.

    python litserve_documented.py --port 8101 --max-batch-size 16 --batch-timeout 0.01
"""

from __future__ import annotations

import argparse
import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor

import litserve as ls
import torch
import torchvision
from PIL import Image


class ImageClassifierAPI(ls.LitAPI):
    def setup(self, device):
        torch.manual_seed(0)
        self.image_processing = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
        self.model = torchvision.models.resnet18(weights=None).eval().to(device)
        self.pool = ThreadPoolExecutor(os.cpu_count())

    def decode_request(self, request):
        return request["image_data"]

    def batch(self, image_data_list):
        def process_image(image_data):
            image = Image.open(io.BytesIO(base64.b64decode(image_data))).convert("RGB")
            return self.image_processing(image)

        inputs = list(self.pool.map(process_image, image_data_list))
        return torch.stack(inputs).to(self.device)  # (B, 3, 224, 224)

    def predict(self, x):
        with torch.inference_mode():
            return torch.softmax(self.model(x), dim=1).topk(5)

    def unbatch(self, output):
        scores, indices = output
        return list(zip(scores.tolist(), indices.tolist(), strict=True))

    def encode_response(self, output):
        scores, indices = output
        pairs = zip(scores, indices, strict=True)
        return {"predictions": [{"index": index, "score": score} for score, index in pairs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    args = parser.parse_args()
    api = ImageClassifierAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
