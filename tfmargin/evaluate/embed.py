"""Embeddings of face images with insightface's test-time protocol, from any artifact.

embedding(x) = l2norm(emb(x) + emb(flip(x))) with flip=True (insightface's "Accuracy-Flip"),
else l2norm(emb(x)). Images are uint8 RGB (N, H, W, 3), or floats already in [-1, 1]; they are
mapped to whatever the artifact takes (see artifacts.py). Batches keep one shape (the last one is
padded) so that compiled functions and interpreters are not rebuilt for a short final batch.
"""

import numpy as np

from tfmargin.data.progress import Progress
from tfmargin.evaluate.artifacts import Embedder, load_embedder
from tfmargin.evaluate.vectors import unit_rows
from tfmargin.pixels import to_model_input, to_pixels

__all__ = ["Embedder", "embed", "load_embedder"]


def _to_input(x, dtype):
    """uint8 pixels or [-1, 1] floats -> what the artifact takes."""
    if dtype == np.uint8:
        if x.dtype == np.uint8:
            return x
        return to_pixels(x)
    if x.dtype == np.uint8:
        return to_model_input(x)
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
    progress = Progress(n, label, unit="img") if verbose else None
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
            progress.update(m)
    if progress:
        progress.close()
    if out is None:
        return np.zeros((0, 0), np.float32)
    return unit_rows(out.astype(np.float64)).astype(np.float32)
