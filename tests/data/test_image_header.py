"""Declared image sizes, read from headers before decoding: checked against Pillow, which parses
the same headers independently, for every format and many sizes; a decompression bomb in a .bin
is refused before any decoder allocates it."""

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tfmargin.data import image_header
from tfmargin.data.image_header import declared_size, too_large
from tfmargin.data.images import CorruptImageError, decode_image

FORMATS = {"JPEG": {"quality": 90}, "PNG": {}, "GIF": {}, "BMP": {},
           "WEBP": {"lossless": True}, "WEBP_LOSSY": {"quality": 80}}


def _encode(fmt, height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt.split("_")[0], **FORMATS[fmt])
    return buf.getvalue()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_declared_size_matches_pillow(fmt):
    rng = np.random.default_rng(0)
    for seed in range(6):
        height, width = (int(v) for v in rng.integers(1, 700, 2))
        data = _encode(fmt, height, width, seed)
        assert Image.open(io.BytesIO(data)).size == (width, height)  # Pillow's reading
        assert declared_size(data) == (height, width), (fmt, height, width)


def test_progressive_jpeg_and_markers_before_the_frame():
    pixels = np.zeros((37, 91, 3), np.uint8)
    buf = io.BytesIO()
    # EXIF-like APP1 and a comment before the frame header; progressive uses SOF2
    Image.fromarray(pixels).save(buf, format="JPEG", progressive=True, comment=b"x" * 300,
                                 exif=b"Exif\x00\x00" + b"\x00" * 200)
    assert declared_size(buf.getvalue()) == (37, 91)


def test_unknown_or_broken_headers_are_left_to_the_decoder():
    assert declared_size(b"") is None
    assert declared_size(b"not an image at all") is None
    assert declared_size(b"\xff\xd8\xff\xe0\x00") is None  # cut inside the first segment
    assert too_large(b"garbage") == ""


def _png_header(width, height):
    """A PNG signature and IHDR chunk declaring width x height (what a bomb needs)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def test_a_bomb_is_refused_before_decoding(tmp_path):
    # a real, valid PNG of 40,000 x 40,000 (4.8 GB as RGB) compresses to a few MB; the header
    # alone is what the check reads, so the header is what this test writes
    bomb = _png_header(40_000, 40_000) + b"\x00" * 64
    with pytest.raises(CorruptImageError, match=r"^photo.png: its header declares 40000x40000"):
        decode_image(bomb, "photo.png")

    from tfmargin.data.verification_bin import load_verification_bin

    good = _encode("PNG", 112, 112, 0)
    path = tmp_path / "bomb.bin"
    path.write_bytes(pickle.dumps(([good, bomb], [True]), protocol=2))
    with pytest.raises(CorruptImageError, match=rf"^{path}: image 1: its header declares"):
        load_verification_bin(path)


def test_the_limit_is_what_decides(monkeypatch):
    data = _encode("JPEG", 120, 100, 1)
    assert decode_image(data).shape == (120, 100, 3)
    monkeypatch.setattr(image_header, "MAX_PIXELS", 120 * 100 - 1)
    with pytest.raises(CorruptImageError, match="100x120 pixels, over the 11,999-pixel limit"):
        decode_image(data)
    monkeypatch.setattr(image_header, "MAX_PIXELS", 120 * 100)
    assert decode_image(data).shape == (120, 100, 3)
