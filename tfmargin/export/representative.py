"""Calibration images for full-integer quantisation, from whatever the user has at hand.

int8 ranges are set by the activations these images produce, so they should look like what the
model will see: aligned faces from the training distribution. Sources:

* an array (N, 112, 112, 3): uint8 pixels, or floats already in [-1, 1];
* an iterable of such arrays, or of `(features, label)` batches from `tfmargin.data.train_dataset`
  (the "image" feature is taken);
* a path: a training source `train_dataset` reads (`.rec` / directory with train.rec, TFRecord
  shards, identity folders), read shuffled with a fixed seed; a `.bin` verification set; or a
  `.npy` array.
"""

import os

import numpy as np

from tfmargin.export.model import IMAGE_SIZE, ExportError
from tfmargin.pixels import to_model_input

DEFAULT_IMAGES = 200


def _as_float(x, where):
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ExportError(f"{where}: expected images (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3), "
                          f"got shape {x.shape}")
    if x.dtype == np.uint8:
        return to_model_input(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ExportError(f"{where}: images must be uint8 or float in [-1, 1], got {x.dtype}")
    if x.size and (x.min() < -1.01 or x.max() > 1.01):
        raise ExportError(f"{where}: float images must be in [-1, 1] ((x - 127.5) / 127.5), got "
                          f"[{x.min():.3g}, {x.max():.3g}]")
    return x.astype(np.float32)


def _from_path(path, num_images, seed):
    if path.endswith(".npy"):
        return np.load(path, mmap_mode="r")[:num_images]
    if path.endswith(".bin"):
        from tfmargin.data import load_verification_bin

        images, _ = load_verification_bin(path)
        rng = np.random.default_rng(seed)
        return images[np.sort(rng.permutation(len(images))[:num_images])]
    from tfmargin.data import train_dataset

    try:
        ds = train_dataset(path, min(64, num_images), shuffle=True, seed=seed, teacher=False,
                           drop_remainder=False)
    except ValueError as e:
        raise ExportError(f"representative data {path}: {e}") from None
    return ds.take(-(-num_images // min(64, num_images)))


def _batches(source):
    for item in source:
        if isinstance(item, tuple):  # (features, label) from a training pipeline
            item = item[0]
        if isinstance(item, dict):
            item = item["image"]
        yield np.asarray(item)


def calibration_images(representative, num_images=DEFAULT_IMAGES, seed=0):
    """float32 (n, 112, 112, 3) in [-1, 1], n <= num_images (fewer if the source is smaller)."""
    if representative is None:
        raise ExportError("int8 quantisation needs representative images (an array, a training "
                          "source path or an iterable of batches)")
    if num_images < 1:
        raise ExportError(f"num_images must be >= 1, got {num_images}")
    where = "representative data"
    if isinstance(representative, (str, os.PathLike)):
        where = os.fspath(representative)
        if not os.path.exists(where):
            raise FileNotFoundError(f"representative data {where} does not exist")
        representative = _from_path(where, num_images, seed)
    if isinstance(representative, np.ndarray):
        images = _as_float(representative[:num_images], where)
    else:
        parts, count = [], 0
        for batch in _batches(representative):
            part = _as_float(batch, where)[:num_images - count]
            parts.append(part)
            count += len(part)
            if count >= num_images:
                break
        if not parts:
            raise ExportError(f"{where}: no images")
        images = np.concatenate(parts)
    if len(images) == 0:
        raise ExportError(f"{where}: no images")
    return images
