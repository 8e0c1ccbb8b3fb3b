"""A contact sheet: a few identities (rows) x several images each (columns), as a PNG.

    python -m tfmargin.cli.prepare synthetic --contact_sheet=docs/synthetic_contact_sheet.png

The noisy tiles make a full-colour PNG large (~0.7 MB for 5 x 8 tiles), so by default the sheet
is stored with a 256-colour palette (median cut refined by k-means; ~0.15 MB, mean error ~4
levels). numpy and zlib only: no imaging library needed.
"""

import struct
import zlib

import numpy as np

from tfmargin.atomic import write_bytes
from tfmargin.datasets.synthetic.generate import render_identity
from tfmargin.datasets.synthetic.identity import DEFAULT_DIFFICULTY


def median_cut(pixels, colours=256, refine=4):
    """A palette for uint8 (N, 3) pixels: (palette uint8 (C, 3), index uint8 (N,)).

    Median cut (split the box with the largest squared error along its widest-variance channel
    at the median) seeds the palette; `refine` Lloyd (k-means) steps then move each colour to
    the mean of the pixels nearest to it, and every pixel takes its nearest palette colour."""
    pixels = np.asarray(pixels, np.uint8).reshape(-1, 3)
    if not 1 <= colours <= 256:
        raise ValueError(f"median_cut: colours must be in 1..256, got {colours}")
    values = pixels.astype(np.float64)

    def error(box):
        return float((values[box].var(axis=0) * len(box)).max()) if len(box) > 1 else 0.0

    boxes = [np.arange(len(pixels))]
    errors = [error(boxes[0])]
    while len(boxes) < colours and max(errors) > 0:
        i = int(np.argmax(errors))
        box, _ = boxes.pop(i), errors.pop(i)
        channel = int(np.argmax(values[box].var(axis=0)))
        order = box[np.argsort(pixels[box, channel], kind="stable")]
        for part in (order[:len(order) // 2], order[len(order) // 2:]):
            boxes.append(part)
            errors.append(error(part))
    palette = np.array([values[box].mean(axis=0) for box in boxes]).reshape(-1, 3)
    for step in range(refine + 1):
        index = _nearest(values, palette)
        if step == refine:
            break
        counts = np.bincount(index, minlength=len(palette))
        used = counts > 0
        for c in range(3):
            sums = np.bincount(index, weights=values[:, c], minlength=len(palette))
            palette[used, c] = sums[used] / counts[used]
    palette = np.clip(np.round(palette), 0, 255).astype(np.uint8)
    return palette, _nearest(values, palette.astype(np.float64)).astype(np.uint8)


def _nearest(values, palette, block=4096):
    """Index of the nearest palette colour of each row (blocks keep the distance tile small)."""
    index = np.empty(len(values), np.int64)
    palette = palette.astype(np.float32)
    norms = (palette ** 2).sum(axis=1)
    for i in range(0, len(values), block):
        chunk = values[i:i + block].astype(np.float32)
        scores = norms[None, :].repeat(len(chunk), axis=0)
        for c in range(3):  # |p|^2 - 2 x.p, without a k=3 matmul (slow in BLAS)
            scores -= (2 * chunk[:, c])[:, None] * palette[None, :, c]
        index[i:i + block] = np.argmin(scores, axis=1)
    return index


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_palette_png(index_image, palette):
    """An 8-bit palette PNG from a uint8 (H, W) index image and its (C, 3) palette."""
    index_image = np.ascontiguousarray(index_image, np.uint8)
    h, w = index_image.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in index_image)  # filter type 0 per row
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def contact_sheet(path=None, identities=5, images_per_identity=8, seed=0,
                  difficulty=DEFAULT_DIFFICULTY, first_identity=0, gap=2, colours=256):
    """Render identities first_identity.. (one per row) and return the uint8 RGB grid of the
    decoded JPEGs exactly as the dataset stores them. With `path`, also write the grid as a
    PNG (atomically): palette PNG with `colours` median-cut colours, or full RGB if None."""
    from tfmargin.data.images import decode_image, encode_png

    if identities < 1 or images_per_identity < 1:
        raise ValueError(f"contact_sheet: need at least 1 identity and 1 image, got "
                         f"{identities} x {images_per_identity}")
    size = 112
    sheet = np.full((identities * (size + gap) - gap, images_per_identity * (size + gap) - gap, 3),
                    255, np.uint8)
    for row in range(identities):
        encoded = render_identity(seed, first_identity + row, images_per_identity, difficulty)
        for col, jpeg in enumerate(encoded):
            y, x = row * (size + gap), col * (size + gap)
            sheet[y:y + size, x:x + size] = decode_image(jpeg, f"identity {row} image {col}")
    if path is not None:
        if colours is None:
            data = encode_png(sheet)
        else:
            palette, index = median_cut(sheet.reshape(-1, 3), colours)
            data = encode_palette_png(index.reshape(sheet.shape[:2]), palette)
        write_bytes(path, data)
    return sheet
