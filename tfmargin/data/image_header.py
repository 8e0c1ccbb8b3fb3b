"""The pixel size an encoded image declares in its header, read before decoding it.

A decoder allocates height x width x 3 bytes for whatever the header claims: a 2 KB PNG can
declare 60,000 x 60,000 pixels (10 GB once decoded), and a flipped bit in a JPEG's frame header
turns 112 rows into 32,880. Readers of files from elsewhere (`.bin` verification sets, photo
folders) check the declared size against MAX_PIXELS first. Pure Python, no decoder needed.
"""

import struct

MAX_PIXELS = 1 << 26  # 67 Mpx: more than any phone photo; about 200 MB once decoded as RGB

_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn; C4/C8/CC are not frames


def _jpeg(data):
    """The first frame header's size, found as libjpeg finds it: segments skipped by their
    length, and bytes between segments that are not a marker skipped one by one (libjpeg
    tolerates them, so a parser that gave up there would let a bomb through)."""
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            i = data.find(b"\xff", i)
            if i < 0:
                return None
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length
            i += 2
            continue
        if marker in _JPEG_FRAMES:
            if i + 9 > n:
                return None
            height, width = struct.unpack_from(">HH", data, i + 5)
            return height, width
        if marker == 0xDA:  # start of scan before any frame header: malformed
            return None
        i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    return None


def _webp(data):
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        return 1 + int.from_bytes(data[27:30], "little"), width
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + ((bits >> 14) & 0x3FFF), 1 + (bits & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack_from("<HH", data, 26)
        return height & 0x3FFF, width & 0x3FFF
    return None


def declared_size(data):
    """(height, width) from the header of a JPEG, PNG, GIF, BMP or WebP; None when the bytes are
    none of these or the header is unreadable (the decoder then has its say)."""
    data = bytes(data)  # the whole header: APPn segments before the frame can be 64 KB each
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack_from(">II", data, 16)
        return height, width
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack_from("<HH", data, 6)
        return height, width
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack_from("<ii", data, 18)
        return abs(height), abs(width)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def too_large(data, max_pixels=None):
    """'' when the declared size is within max_pixels (default MAX_PIXELS) or unknown, else a
    one-line complaint."""
    size = declared_size(data)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if size is None and bytes(data[:3]) == b"\xff\xd8\xff":
        # libjpeg would look for the frame header as _jpeg does; none found means no image,
        # or one laid out to slip past this check
        return "its JPEG header holds no readable frame size; refused before decoding"
    if size is None or size[0] * size[1] <= limit:
        return ""
    return (f"its header declares {size[1]}x{size[0]} pixels, over the {limit:,}-pixel limit "
            "(tfmargin.data.image_header.MAX_PIXELS); refused before decoding")
