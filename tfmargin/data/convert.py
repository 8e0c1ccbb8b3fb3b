"""Conversions between the on-disk formats: .rec / identity folders -> TFRecord shards, and
identity folders (or a .rec) -> insightface .rec. Every image is test-decoded on the way: a corrupt
one is skipped and counted, or, with strict=True, stops the run with an error naming its record.
Outputs are written under temporary names, so a failed run leaves earlier outputs intact.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tfmargin.atomic import write_bytes
from tfmargin.data.images import CorruptImageError, check_images
from tfmargin.data.progress import Progress
from tfmargin.data.recordio import RecordIOWriter
from tfmargin.data.sources import IndexedSource, load_array
from tfmargin.data.tfrecord import TFRecordShardWriter


class Summary(dict):
    """Counts of a conversion (read, written, skipped_corrupt, ...), printable as one line.
    `skipped` names every file or record left out (or, in pairs_to_bin, centre-cropped for
    want of a face) and why: "PATH: record KEY: corrupt image (...)", "PHOTO: no face found".
    The prepare CLI prints them on stderr."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped = []

    def skip(self, count, name):
        """Count one left-out item under `count` and name it."""
        self[count] = self.get(count, 0) + 1
        self.skipped.append(name)

    def __str__(self):
        return ", ".join(f"{k}={v}" for k, v in self.items())


def iter_checked(source, positions, summary, *, verify=True, strict=False, chunk=256,
                 progress=True, desc="convert"):
    """Yield (position, encoded, label, float labels) for each position whose image decodes."""
    summary.setdefault("read", 0)
    summary.setdefault("skipped_corrupt", 0)
    workers = os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool, \
            Progress(len(positions), desc, enabled=progress) as bar:
        for start in range(0, len(positions), chunk):
            part = positions[start:start + chunk]
            items = [source.read(int(i)) for i in part]
            problems = check_images([it[0] for it in items], pool) if verify else [""] * len(part)
            for i, item, problem in zip(part, items, problems):
                summary["read"] += 1
                if problem:
                    if strict:
                        raise CorruptImageError(f"{source.path}: record {source.key(int(i))}: "
                                                f"corrupt image ({problem})")
                    summary.skip("skipped_corrupt", f"{source.path}: record "
                                 f"{source.key(int(i))}: corrupt image ({problem})")
                    continue
                yield int(i), item[0], item[1], item[2]
            bar.update(len(part))


def convert_to_tfrecord(source, output_dir, *, num_shards=None, teacher=None, teacher_flip=None,
                        shuffle=True, seed=0, verify=True, strict=False, prefix="train",
                        label_index=0, progress=True):
    """Write TFRecord shards from a .rec or identity folders; returns a Summary.

    `teacher` / `teacher_flip`: (N, D) arrays (or .npy paths) aligned with the source's image
    order (RecordIO.keys() / the folder listing), stored with each record. `shuffle` writes the
    records in a seeded random order, so that a streaming shuffle buffer sees mixed identities
    (insightface .rec files are sorted by identity). Default shard count: one per 20,000 images.
    """
    src = IndexedSource(source, label_index=label_index)
    n = len(src)
    teacher = load_array(teacher, "teacher", n)
    teacher_flip = load_array(teacher_flip, "teacher_flip", n)
    if teacher_flip is not None and teacher is None:
        raise ValueError("teacher_flip given without teacher")
    if teacher is not None and teacher_flip is not None and teacher.shape != teacher_flip.shape:
        raise ValueError(f"teacher {teacher.shape} and teacher_flip {teacher_flip.shape} differ")
    positions = np.arange(n)
    if shuffle:
        positions = np.random.default_rng(seed).permutation(n)
    num_shards = num_shards or max(1, math.ceil(n / 20000))
    summary = Summary(source=os.fspath(source), images=n)
    with TFRecordShardWriter(output_dir, num_shards, prefix=prefix,
                             num_classes=src.num_classes, source=os.fspath(source)) as writer:
        for i, data, label, _ in iter_checked(src, positions, summary, verify=verify,
                                              strict=strict, progress=progress,
                                              desc="rec2tfrecord"):
            writer.write(data, label, src.key(i),
                         None if teacher is None else teacher[i],
                         None if teacher_flip is None else teacher_flip[i])
    summary["written"] = writer.count
    summary["shards"] = num_shards
    return summary


def convert_to_rec(source, output, *, verify=True, strict=False, image_size=112, label_index=0,
                   progress=True):
    """Write an insightface dataset (`train.rec`, `.idx`, `property`, header record) from
    identity folders or another .rec; `output` is a .rec path or a directory. Returns a Summary.

    JPEG images are stored as they are; other formats are re-encoded to JPEG (quality 95), the
    insightface convention.
    """
    from tfmargin.data.images import decode_image, encode_jpeg, is_jpeg

    src = IndexedSource(source, label_index=label_index)
    output = os.fspath(output)
    path = output if output.endswith(".rec") else os.path.join(output, "train.rec")
    summary = Summary(source=os.fspath(source), images=len(src))
    summary["reencoded"] = 0
    order = np.argsort(src.labels(), kind="stable")  # identities must be consecutive
    with RecordIOWriter(path, header=True, num_classes=src.num_classes,
                        image_size=image_size) as writer:
        for i, data, label, _ in iter_checked(src, order, summary, verify=verify, strict=strict,
                                              progress=progress, desc="folders2rec"):
            if not is_jpeg(data):
                data = encode_jpeg(decode_image(data, src.key(i)), 95)
                summary["reencoded"] += 1
            writer.write(data, label)
    summary["written"] = writer.count
    summary["num_classes"] = writer.num_classes
    return summary


def align_photos(source, output, *, size=112, min_score=0.9, min_face_size=20, strict=False,
                 quality=95, progress=True, detector=None):
    """Detect and align the face of every photo of identity folders (MTCNN), writing aligned
    identity folders (`output` a directory) or an insightface .rec (`output` ending in .rec).

    Each photo keeps its largest face; photos without a face are counted as no_face, corrupt
    ones as skipped_corrupt (or raise with strict). Returns a Summary.
    """
    from tfmargin.data.align import detect_and_align, get_detector
    from tfmargin.data.folders import ImageFolder
    from tfmargin.data.images import decode_image, encode_jpeg

    folder = ImageFolder(source)
    detector = detector or get_detector()
    output = os.fspath(output)
    to_rec = output.endswith(".rec")
    summary = Summary(source=os.fspath(source), images=len(folder), written=0, no_face=0,
                      skipped_corrupt=0, identities=folder.num_classes)
    writer = (RecordIOWriter(output, header=True, num_classes=folder.num_classes,
                             image_size=size) if to_rec else None)
    try:
        with Progress(len(folder), "align", enabled=progress) as bar:
            for i in range(len(folder)):
                bar.update(1)
                data, label = folder.read(i)
                try:
                    image = decode_image(data, folder.full_path(i))
                except CorruptImageError as e:
                    if strict:
                        raise
                    summary.skip("skipped_corrupt", str(e).splitlines()[0])
                    continue
                faces = detect_and_align(image, size, min_score=min_score,
                                         min_face_size=min_face_size, detector=detector)
                if not faces:
                    summary.skip("no_face", f"{folder.full_path(i)}: no face found")
                    continue
                jpeg = encode_jpeg(max(faces, key=lambda f: f.box[2] * f.box[3]).aligned,
                                   quality)
                if to_rec:
                    writer.write(jpeg, label)
                else:
                    name = os.path.splitext(folder.paths[i])[0] + ".jpg"
                    write_bytes(os.path.join(output, name), jpeg)
                summary["written"] += 1
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    return summary
