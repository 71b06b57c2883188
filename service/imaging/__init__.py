"""Images in, model input out: payload splitting (`payload`), decoding and preprocessing
(`decode`, `preprocess`), and the decode thread pool (`pool`)."""

from service.imaging.decode import (
    decode_image,
    decode_images,
    open_image,
    open_images,
    preprocess_image,
    preprocess_images,
)
from service.imaging.payload import SUPPORTED_CONTENT_TYPES, split_body
from service.imaging.pool import decode_pool
from service.imaging.preprocess import Preprocess

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "Preprocess",
    "decode_image",
    "decode_images",
    "decode_pool",
    "open_image",
    "open_images",
    "preprocess_image",
    "preprocess_images",
    "split_body",
]
