"""Checksums that tie a teacher signal to its teacher and its dataset."""

import hashlib
import json
import math
import os

import numpy as np

from tfmargin.distill.format import FORMAT, MIB, TeacherSignalError


def sha256_file(path, start=0, length=None):
    """Hex sha256 of a file (or of `length` bytes from `start`), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = math.inf if length is None else length
        while left > 0:
            block = f.read(int(min(MIB, left)))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def weights_sha256(model):
    """Hex sha256 of a model's weight values (shapes and bytes, in weight order): names a teacher
    that never was a file, and survives re-saving, unlike the file's own sha256."""
    import keras

    h = hashlib.sha256()
    for w in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        h.update(f"{value.dtype.str}{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def dataset_fingerprint(source):
    """{"kind", "path", "sha256", ...parts} of a training set: a .rec (or a directory holding
    train.rec) or identity folders. Cheap: see the module docstring for what it covers."""
    from tfmargin.data.folders import ImageFolder
    from tfmargin.data.sources import source_kind

    source = os.fspath(source)
    try:
        kind = source_kind(source)
    except ValueError as e:
        raise TeacherSignalError(str(e)) from None
    h = hashlib.sha256(f"{FORMAT} {kind}\n".encode())
    if kind == "rec":
        rec = source if source.endswith(".rec") else os.path.join(source, "train.rec")
        idx = os.path.splitext(rec)[0] + ".idx"
        prop = os.path.join(os.path.dirname(os.path.abspath(rec)), "property")
        size = os.path.getsize(rec)
        parts = {
            "rec_size": size,
            "idx_sha256": sha256_file(idx) if os.path.exists(idx) else None,
            "property": open(prop).read().strip() if os.path.exists(prop) else None,
            "head_sha256": sha256_file(rec, 0, MIB),
            "tail_sha256": sha256_file(rec, max(0, size - MIB)),
        }
        path = rec
    elif kind == "folders":
        folder = ImageFolder(source)
        listing = hashlib.sha256()
        for rel in folder.paths:
            listing.update(f"{rel}\0{os.path.getsize(os.path.join(source, rel))}\n".encode())
        parts = {"images": len(folder), "classes": folder.num_classes,
                 "listing_sha256": listing.hexdigest()}
        path = source
    else:
        raise TeacherSignalError(f"{source}: the teacher signal is made from a .rec or identity "
                                 "folders, not from TFRecord shards")
    h.update(json.dumps(parts, sort_keys=True).encode())
    return {"kind": kind, "path": os.path.abspath(path), "sha256": h.hexdigest(), **parts}
