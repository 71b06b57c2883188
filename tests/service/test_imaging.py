"""Decoding and preprocessing of images with Pillow."""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile
from PIL.JpegImagePlugin import JpegImageFile
from service_fakes import png_bytes

from service.errors import CorruptImage, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.imaging import Preprocess, decode_image, decode_images, decode_pool, split_body

GRAY = Preprocess("gray", resize=8, crop=(8, 8), mean=(0.0,), std=(1.0,))
RGB = Preprocess("rgb", resize=8, crop=(8, 8), mean=(0.0,) * 3, std=(1.0,) * 3)
LIMIT = 10_000_000


def decode(data: bytes, preprocess: Preprocess = GRAY, limit: int = LIMIT) -> np.ndarray:
    out = np.empty(preprocess.input_shape, np.float32)
    decode_image(data, preprocess, limit, out)
    return out


def test_exif_orientation_is_applied():
    pixels = np.zeros((8, 8), np.uint8)
    pixels[:, :4] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the left edge becomes the top
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)

    out = decode(buffer.getvalue())[0]  # (H, W)

    np.testing.assert_allclose(out[:4], 1.0)
    np.testing.assert_allclose(out[4:], 0.0)


def test_rgb_converts_to_gray_with_luma_weights_and_gray_to_rgb():
    red = png_bytes(np.tile(np.array([255, 0, 0], np.uint8), (8, 8, 1)))
    gray = png_bytes(np.full((8, 8), 100, np.uint8))

    assert decode(red)[0, 0, 0] == pytest.approx(76 / 255, abs=1 / 255)
    as_rgb = decode(gray, RGB)
    assert as_rgb.shape == (3, 8, 8)
    np.testing.assert_allclose(as_rgb, 100 / 255, atol=1e-6)


def test_shorter_side_resize_then_center_crop():
    pixels = np.zeros((16, 32), np.uint8)  # H=16, W=32
    pixels[:, 4:28] = 255  # white around the central 16 columns, black at both ends
    out = decode(png_bytes(pixels))  # shorter side 16 -> 8, then the central 8x8 (cols 8..24)

    assert out.shape == (1, 8, 8)
    np.testing.assert_allclose(out, 1.0, atol=0.02)


def test_mean_and_std_normalise_each_channel():
    preprocess = Preprocess("rgb", 8, (8, 8), mean=(0.5, 0.0, 1.0), std=(0.5, 1.0, 2.0))
    out = decode(png_bytes(np.full((8, 8, 3), 255, np.uint8)), preprocess)
    assert out[:, 0, 0].tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_normalise_matches_the_formula_for_every_pixel_value_and_fills_out_in_place():
    preprocess = Preprocess("rgb", 8, (8, 8), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    pixels = np.broadcast_to(np.arange(256, dtype=np.uint8), (3, 1, 256))  # (C, H, W)
    mean = np.array(preprocess.mean).reshape(3, 1, 1)
    std = np.array(preprocess.std).reshape(3, 1, 1)
    out = np.empty(pixels.shape, np.float32)

    result = preprocess.normalise(pixels, out=out)

    assert result is out and out.dtype == np.float32
    np.testing.assert_allclose(out, (pixels / 255 - mean) / std, rtol=1e-6, atol=1e-6)


def test_large_jpeg_uses_draft_mode_and_matches_a_full_decode(monkeypatch):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((1600, 1200), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    preprocess = Preprocess("rgb", 64, (64, 64), (0.0,) * 3, (1.0,) * 3)
    requested = []
    original_draft = JpegImageFile.draft

    def spy(self, mode, size):
        requested.append((mode, size))
        return original_draft(self, mode, size)

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    out = decode(buffer.getvalue(), preprocess)

    assert requested == [("RGB", (64, 64))]
    reference = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    box = (200, 0, 1400, 1200)  # the central square the crop keeps
    expected = np.asarray(reference.resize((64, 64), Image.Resampling.BILINEAR, box=box))
    difference = np.abs(out.transpose(1, 2, 0) - expected / 255.0)
    assert difference.mean() < 0.03


def test_pixel_limit_is_enforced_before_decoding(monkeypatch):
    buffer = io.BytesIO()
    Image.new("1", (4000, 3000)).save(buffer, format="PNG")  # 12 MP, a few KB of PNG

    def no_decoding(self):
        raise AssertionError("decoded a too-large image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(PayloadTooLarge, match="4000x3000 = 12000000 pixels; the limit is 1000000"):
        decode(buffer.getvalue(), limit=1_000_000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty image data"),
        (b"GIF89a-nope", "cannot identify image data"),
        (png_bytes(np.zeros((8, 8), np.uint8))[:-30], "corrupt"),
    ],
)
def test_corrupt_data_raises_corrupt_image(data, message):
    with pytest.raises(CorruptImage, match=message):
        decode(data)


def test_errors_in_multi_image_requests_name_the_image():
    good = png_bytes(np.zeros((8, 8), np.uint8))
    with pytest.raises(CorruptImage, match=r"^image 1: cannot identify"):
        decode_images([good, b"junk"], GRAY, LIMIT)


def test_sixteen_bit_and_palette_with_transparency_decode_cleanly():
    deep = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    assert deep.mode.startswith("I;16")
    buffer = io.BytesIO()
    deep.save(buffer, format="PNG")
    palette = Image.new("P", (8, 8), 1)
    palette.info["transparency"] = b"\x00\x80" + b"\xff" * 254
    palette_buffer = io.BytesIO()
    palette.save(palette_buffer, format="PNG", transparency=0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(decode(buffer.getvalue()), 1.0)
        assert decode(palette_buffer.getvalue(), RGB).shape == (3, 8, 8)


def test_split_body_reads_multipart_files_and_ignores_plain_fields():
    boundary = "XyZ"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\n'
        f"Content-Type: image/png\r\n\r\nAAAA\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="b"; filename="b.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\nBBBB\r\n--{boundary}--\r\n"
    ).encode()
    blobs = split_body(f"multipart/form-data; boundary={boundary}", body, 10)
    assert blobs == [b"AAAA", b"BBBB"]


def test_split_body_rejections():
    with pytest.raises(UnsupportedMediaType, match="'application/xml'"):
        split_body("application/xml", b"<x/>", 10)
    with pytest.raises(PayloadTooLarge, match="3 images in one request; the limit is 2"):
        split_body("application/json", b'{"images": ["AA==", "AA==", "AA=="]}', 2)
    with pytest.raises(InvalidInput, match="holds no images"):
        split_body("application/json", b'{"images": []}', 2)
    with pytest.raises(InvalidInput, match="data: URL without ';base64'"):
        split_body("application/json", b'{"images": ["data:image/png,abc"]}', 2)


def thread_priority(_: object = None) -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_decode_threads_run_niceness_steps_below_the_thread_that_made_them():
    own = thread_priority()

    with decode_pool(2, niceness=3) as lowered, decode_pool(1, niceness=0) as unchanged:
        assert set(lowered.map(thread_priority, range(8))) == {min(own + 3, 19)}
        assert unchanged.submit(thread_priority).result() == own
    assert thread_priority() == own  # the caller keeps its priority


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_decode_threads_still_work_where_the_os_refuses_a_lower_priority(monkeypatch, caplog):
    def refuse(*args):
        raise PermissionError("operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    with decode_pool(1, niceness=5) as pool:
        assert pool.submit(thread_priority).result() == thread_priority()
    assert "decode thread keeps its priority" in caplog.text


# A DDS header with an unknown pixel format (Pillow raises NotImplementedError) and an EMF
# header with an empty frame (ZeroDivisionError): both answered 500 before the allow-list.
CRAFTED_DDS = (
    b"DDS "
    + struct.pack("<7I", 124, 0x1007, 8, 8, 0, 0, 0)
    + bytes(44)
    + struct.pack("<2I", 32, 0x4)
    + b"ZZZZ"
    + bytes(296)
)
CRAFTED_EMF = struct.pack("<II4i4i", 1, 88, *[0] * 8) + b" EMF" + struct.pack("<I", 0x10000)
CRAFTED_EMF += bytes(40)


@pytest.mark.parametrize("data", [CRAFTED_DDS, CRAFTED_EMF], ids=["dds", "emf"])
def test_formats_outside_the_allow_list_are_never_decoded(data):
    out = np.empty((1, 8, 8), np.float32)
    with pytest.raises(CorruptImage, match=r"not one of the accepted formats \(JPEG, PNG\)"):
        decode_image(data, GRAY, 10_000, out, formats=("JPEG", "PNG"))


@pytest.mark.parametrize(
    ("data", "image_format", "failure"),
    [(CRAFTED_DDS, "DDS", "NotImplementedError"), (CRAFTED_EMF, "WMF", "ZeroDivisionError")],
    ids=["dds", "emf"],
)
def test_any_decoder_failure_is_a_corrupt_image(data, image_format, failure):
    out = np.empty((1, 8, 8), np.float32)
    with pytest.raises(CorruptImage, match=rf"the decoder failed \({failure}\)"):
        decode_image(data, GRAY, 10_000, out, formats=(image_format,))
