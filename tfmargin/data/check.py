"""Check a dataset of unknown provenance once, whole, before training on it: every structural
check the readers make (RecordIO headers, labels, `.idx` / `property`, identity records,
`dataset.json` and shard counts, the `.bin` unpickler's budget), and every image test-decoded,
its header size checked first. The training stream checks structure as it goes but decodes
images with TensorFlow's op alone; this is where a decompression bomb or an undecodable image
is found by name before a long run meets it.

    check_dataset("faces_emore")            # Summary: images=5822653, identities=85742, ...
    check_dataset("lfw.bin")

Structural damage raises (a TfmarginError naming the file and record); corrupt images are
counted and named in `summary.skipped`, or raise at the first one with strict=True.
"""

import os

import numpy as np

from tfmargin.data.convert import Summary, iter_checked
from tfmargin.data.image_header import declared_size
from tfmargin.data.images import CorruptImageError, decodable


def _size_counter(summary, image_size):
    def count(data):
        size = declared_size(data)
        if size is not None and size != (image_size, image_size):
            summary["other_size"] = summary.get("other_size", 0) + 1
    return count


def _check_indexed(source, summary, strict, progress, image_size):
    from tfmargin.data.sources import IndexedSource

    src = IndexedSource(source)
    summary.update(images=len(src), identities=src.num_classes)
    if src.kind == "rec":
        ranges = src.reader.identity_ranges()  # validated against the header
        if ranges is not None:
            summary["identity_records"] = len(ranges)
    labels = np.asarray(src.labels())
    if len(labels):
        summary["labels_seen"] = int(len(np.unique(labels)))
    count = _size_counter(summary, image_size)
    for _, data, _, _ in iter_checked(src, np.arange(len(src)), summary, strict=strict,
                                      progress=progress, desc="check"):
        count(data)


def _check_tfrecord(source, summary, strict, progress, image_size):
    from tfmargin.data.tfrecord import check_shards, tfrecord_files

    files, meta = tfrecord_files(source)
    summary.update(shards=len(files), identities=(meta or {}).get("num_classes"))
    summary.setdefault("skipped_corrupt", 0)
    count = _size_counter(summary, image_size)

    def on_image(path, n, data):
        problem = decodable(data)
        if problem:
            message = f"{path}: record {n}: corrupt image ({problem})"
            if strict:
                raise CorruptImageError(message)
            summary.skip("skipped_corrupt", message)
        else:
            count(data)

    summary["images"] = check_shards(source, on_image=on_image)


def _check_bin(path, summary):
    from tfmargin.data.verification_bin import load_verification_bin

    images, issame = load_verification_bin(path)  # decodes every image, bounded
    summary.update(pairs=len(issame), images=len(images), same=int(np.sum(issame)))


def check_dataset(source, *, strict=False, progress=True, image_size=112):
    """Check `source` (a .rec or its directory, TFRecord shards, identity folders, or a
    verification .bin) whole; returns a Summary (images, identities, skipped_corrupt,
    other_size: images whose header gives another size than image_size x image_size)."""
    source = os.fspath(source)
    summary = Summary(source=source)
    if source.endswith(".bin"):
        _check_bin(source, summary)
        return summary
    from tfmargin.data.sources import source_kind

    if source_kind(source) == "tfrecord":
        _check_tfrecord(source, summary, strict, progress, image_size)
    else:
        _check_indexed(source, summary, strict, progress, image_size)
    return summary


