"""The teacher embeddings in the order of the dataset's own positions, for samplers that read
images by position (the P x K identity batches of the triplet methods) rather than streaming
the signal's shards."""

import hashlib
import os

import numpy as np

from tfmargin.distill.format import TeacherSignalError


def _cache_name(signal):
    h = hashlib.sha256()
    for shard in signal.manifest["shards"]:
        h.update(shard["sha256"].encode())
    h.update(str(signal.manifest["dataset"].get("sha256")).encode())
    return f"teacher_by_position-{h.hexdigest()[:16]}.npy"


def _build(signal, src, out):
    from tfmargin.data.tfrecord import tfrecord_dataset

    position = {src.key(i): i for i in range(len(src))}
    filled = np.zeros(len(src), bool)
    ds = tfrecord_dataset(signal.directory).map(lambda r: (r["key"], r["teacher"]))
    for keys, teacher in ds.batch(4096).as_numpy_iterator():
        for key, row in zip(keys, teacher):
            i = position.get(key.decode())
            if i is None:
                raise TeacherSignalError(f"{signal.directory}: record key {key.decode()!r} is "
                                         f"not in {src.path}")
            out[i] = row
            filled[i] = True
    if not filled.all():
        i = int(np.argmin(filled))
        raise TeacherSignalError(f"{src.path}: record {src.key(i)} has no teacher embedding in "
                                 f"{signal.directory}")


def teacher_by_position(signal, source, cache=True):
    """(N, D) float32: row i is the teacher's embedding of position i of `source` (a .rec or
    identity folders, tfmargin.data.IndexedSource order), matched by the record keys the
    signal stores. Built once from the shards and cached in the signal directory as a
    memory-mapped .npy whose name carries the shards' checksums (a derived file: deleting it
    is safe); with cache=False (the cache neither read nor written), or when the directory is
    read-only, it is built in memory."""
    from tfmargin.data.sources import IndexedSource

    src = IndexedSource(source)
    path = os.path.join(signal.directory, _cache_name(signal))
    if cache and os.path.isfile(path):
        cached = np.load(path, mmap_mode="r")
        if cached.shape == (len(src), signal.embedding_size):
            return cached
    shape = (len(src), signal.embedding_size)
    if cache and os.access(signal.directory, os.W_OK):
        tmp = path + ".partial.npy"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            _build(signal, src, out)
            out.flush()
            del out
            os.replace(tmp, path)
            return np.load(path, mmap_mode="r")
        except OSError:
            pass  # a full or read-only disk: align in memory instead
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    out = np.zeros(shape, np.float32)
    _build(signal, src, out)
    return out
