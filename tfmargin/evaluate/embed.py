"""Embeddings of face images with insightface's test-time protocol, from any artifact.

embedding(x) = l2norm(emb(x) + emb(flip(x))) with flip=True (insightface's "Accuracy-Flip"),
else l2norm(emb(x)). Images are uint8 RGB (N, H, W, 3), or floats already in [-1, 1]; they are
mapped to whatever the artifact takes (see artifacts.py). Batches keep one shape (the last one is
padded) so that compiled functions and interpreters are not rebuilt for a short final batch.
"""

import sys
import time

import numpy as np

from tfmargin.evaluate.artifacts import Embedder, load_embedder
from tfmargin.evaluate.vectors import unit_rows

__all__ = ["Embedder", "embed", "load_embedder"]


class _Progress:
    """A one-line progress bar on stderr (rewritten in place on a terminal, every 10% if not)."""

    def __init__(self, total, label):
        self.total, self.label = total, label
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_report = 0.1

    def update(self, done):
        frac = done / self.total if self.total else 1.0
        if not self.tty and frac < self.next_report and done < self.total:
            return
        self.next_report = frac + 0.1
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "=" * int(30 * frac)
        line = (f"{self.label} [{bar:<30}] {done}/{self.total} images, {rate:.0f} img/s, "
                f"{elapsed:.0f}s")
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _to_input(x, dtype):
    """uint8 pixels or [-1, 1] floats -> what the artifact takes."""
    if dtype == np.uint8:
        if x.dtype == np.uint8:
            return x
        return np.clip(np.round(x * 127.5 + 127.5), 0, 255).astype(np.uint8)
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 127.5) / 127.5
    return x.astype(np.float32, copy=False)


def _pad(x, size):
    if x.shape[0] >= size:
        return x
    return np.concatenate([x, np.zeros((size - x.shape[0], *x.shape[1:]), x.dtype)])


def _run(embedder, x, full):
    """Embed x in calls of one shape: `full` rows, or the artifact's fixed batch."""
    if embedder.batch:
        b = embedder.batch
        return np.concatenate([embedder(_pad(x[i:i + b], b))[:min(b, x.shape[0] - i)]
                               for i in range(0, x.shape[0], b)])
    return embedder(_pad(x, full))[:x.shape[0]]


def unique_rows(images):
    """(first, inverse): `images[first]` holds each distinct image once (in order of first
    appearance) and `images[first][inverse]` gives `images` back. Verification sets list one
    photo in many pairs (the synthetic test.bin: 12,000 slots, 600 photos)."""
    import hashlib

    seen, first = {}, []
    inverse = np.empty(images.shape[0], np.int64)
    for i in range(images.shape[0]):
        key = hashlib.blake2b(np.ascontiguousarray(images[i]).tobytes(), digest_size=16).digest()
        j = seen.setdefault(key, len(first))
        if j == len(first):
            first.append(i)
        inverse[i] = j
    return np.asarray(first, np.int64), inverse


def embed(model, images, batch_size=128, flip=True, verbose=False, label="embedding",
          dedupe=False):
    """L2-normalised float32 (N, D) embeddings of `images` by `model`.

    Args:
      model: a Keras model, a path to a .keras file, a SavedModel directory, a .tflite or an
        .onnx file, an Embedder (from load_embedder, to reuse a loaded artifact) or a callable
        on float32 [-1, 1] NHWC batches.
      images: uint8 RGB (N, H, W, 3), or floats in [-1, 1]. Memory-mapped arrays are read one
        batch at a time.
      batch_size: images per call (with flip, each call holds 2 * batch_size images).
      flip: add the embedding of the horizontally flipped image before normalising.
      verbose: show a progress bar on stderr.
      dedupe: run the model once per distinct image (bytes-equal rows share one embedding).
    """
    embedder = load_embedder(model)
    if not hasattr(images, "shape"):
        images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{label}: expected images (N, H, W, 3), got shape {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"{label}: images must be uint8 or float in [-1, 1], got {images.dtype}")
    if embedder.image_size and tuple(images.shape[1:3]) != tuple(embedder.image_size):
        raise ValueError(f"{label}: the model takes {embedder.image_size[0]}x"
                         f"{embedder.image_size[1]} images, got {images.shape[1]}x"
                         f"{images.shape[2]}")
    if dedupe:
        first, inverse = unique_rows(images)
        if len(first) < images.shape[0]:
            return embed(embedder, np.asarray(images)[first], batch_size, flip, verbose,
                         label)[inverse]
    n = images.shape[0]
    batch_size = int(batch_size)
    progress = _Progress(n, label) if verbose else None
    out = None
    for start in range(0, n, batch_size):
        x = _to_input(np.asarray(images[start:start + batch_size]), embedder.input_dtype)
        m = x.shape[0]
        if flip:
            x = np.concatenate([x, x[:, :, ::-1]])
        e = _run(embedder, x, batch_size * (2 if flip else 1))
        if e.ndim != 2 or e.shape[0] < x.shape[0]:
            raise ValueError(f"{label}: the model returned shape {e.shape} for a batch of "
                             f"{x.shape[0]} images; expected (batch, D) embeddings")
        e = e[:m] + e[m:2 * m] if flip else e[:m]
        if out is None:
            out = np.empty((n, e.shape[1]), np.float32)
        out[start:start + m] = e
        if progress:
            progress.update(start + m)
    if out is None:
        return np.zeros((0, 0), np.float32)
    return unit_rows(out.astype(np.float64)).astype(np.float32)
