"""Extracting a teacher signal: the teacher's embedding of every training image, written as
TFRecord shards with the centers and a manifest, all or nothing (format.py)."""

import datetime
import math
import os
import time

import numpy as np

from tfmargin.atomic import atomic_directory, write_json
from tfmargin.distill.checksums import dataset_fingerprint, sha256_file
from tfmargin.distill.format import (CENTERS, FORMAT, MANIFEST, MIB, TeacherSignalError, about,
                                     make_signal)
from tfmargin.distill.reader import check_labels, diagnose, image_batches, open_source
from tfmargin.distill.teacher import Teacher, resolve_centers

SHARD_BYTES = 200 * MIB  # default shard size: the range TensorFlow's guide recommends
CLASS_MEANS = "class_means"  # centers= value: each class's mean teacher embedding


def _check_output(output_dir, source_path):
    output_dir = os.path.abspath(os.fspath(output_dir))
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise TeacherSignalError(f"{output_dir}: output exists and is not a directory")
        if os.listdir(output_dir) and not os.path.exists(os.path.join(output_dir, MANIFEST)):
            raise TeacherSignalError(f"{output_dir}: output directory holds other files (no "
                                     f"{MANIFEST}); give a new or empty directory")
    src_dir = os.path.dirname(source_path) if source_path.endswith(".rec") else source_path
    if os.path.abspath(src_dir) == output_dir:
        raise TeacherSignalError(f"{output_dir}: output must not be the dataset's own directory")
    return output_dir


def _default_shards(fingerprint, num_images, dim, flip):
    data = fingerprint.get("rec_size") or 0
    if not data:  # identity folders: the listing is already in memory, sizes are not
        data = num_images * 8000  # ~8 KB per 112x112 JPEG
    total = data + num_images * dim * 4 * (2 if flip else 1)
    return max(1, min(num_images, math.ceil(total / SHARD_BYTES)))


def _class_means(sums, where):
    empty = np.flatnonzero(~np.any(sums, axis=1))
    if empty.size:
        raise TeacherSignalError(f"{where}: class {int(empty[0])} has no images; class_means "
                                 "needs an image of every class", "source")
    return (sums / np.linalg.norm(sums, axis=1, keepdims=True)).T.astype(np.float32)


def extract_teacher_signal(teacher, source, output_dir, *, centers=None, flip=False,
                           batch_size=128, shards=None, teacher_path=None, log=print,
                           progress=True, shuffle=False, seed=0):
    """Compute and write a teacher signal; returns it as a TeacherSignal.

    teacher: a keras Model or a .keras path: the classifier (inputs image/label[/teacher], as
        tfmargin.train.build.classifier builds it) or its embedding backbone (float32
        (B, H, H, 3) in [-1, 1] -> (B, D)).
    source: a .rec (insightface RecordIO with its .idx; or a directory holding train.rec) or
        identity folders.
    centers: (D, C) array or .npy path; default: the teacher classifier's head. Stored with
        unit-norm columns. "class_means": the normalised mean of the teacher's (normalised)
        embeddings of each class of `source`, for a teacher that never saw these identities
        (any embedding model, or a classifier of other classes): what AdaDistill needs, since
        it builds its centers from the teacher's embeddings, not from its classifier.
    flip: also store the embeddings of the horizontally flipped images (`teacher_flip`).
    shards: number of TFRecord shards (default: about 200 MB each).
    teacher_path: the .keras file an in-memory teacher was loaded from (its sha256 goes into
        the manifest; a path given as `teacher` is used directly).
    shuffle: write the records in a seeded random order instead of the dataset's. insightface
        .rec files are sorted by identity, and a streaming shuffle buffer over sorted shards
        sees only a few hundred identities at a time: pass shuffle=True for real data. Each
        record keeps its dataset key either way.
    Everything is checked before any image is read (embedding size == centers' D, dataset
    classes == centers' C, every label < C, output directory usable); errors are
    TeacherSignalError with one line naming the file, field or record.
    """
    import tensorflow as tf

    import tfmargin

    log = log or (lambda message: None)
    started = time.perf_counter()
    if batch_size < 1:
        raise TeacherSignalError(f"batch_size must be >= 1, got {batch_size}", "batch_size")
    with about("teacher"):
        t = Teacher.resolve(teacher, teacher_path)
    means = isinstance(centers, str) and centers == CLASS_MEANS
    with about("teacher" if centers is None else "centers"):
        if means:
            centers, centers_from = None, "class means of the teacher's embeddings"
        else:
            centers, centers_from = resolve_centers(centers, t)
    dim = t.embedding_size if means else centers.shape[0]
    if t.embedding_size != dim:
        raise TeacherSignalError(f"{t.where}: the teacher embeds into {t.embedding_size} "
                                 f"dimensions but the centers ({centers_from}) are {dim} x "
                                 f"{centers.shape[1]}; they must agree", "centers")
    with about("source"):
        src = open_source(source)
        n = len(src)
        if n == 0:
            raise TeacherSignalError(f"{src.path}: no images")
        if means:
            num_classes = src.num_classes or int(check_labels(src, np.iinfo(np.int64).max)
                                                 .max()) + 1
        else:
            num_classes = centers.shape[1]
            if src.num_classes is not None and src.num_classes != num_classes:
                raise TeacherSignalError(f"{src.path}: the dataset has {src.num_classes} "
                                         f"classes but the teacher's centers ({centers_from}) "
                                         f"have {num_classes}")
        check_labels(src, num_classes)
        fingerprint = dataset_fingerprint(source)
    with about("output_dir"):
        output_dir = _check_output(output_dir, src.path)
    if shards is None:
        shards = _default_shards(fingerprint, n, dim, flip)
    if not 1 <= shards <= n:
        raise TeacherSignalError(f"shards must be in 1..{n} (the number of images), got {shards}",
                                 "shards")
    teacher_info = t.describe()
    batch_size = min(batch_size, n)  # calls keep one shape: the last batch is padded to it
    order = (np.random.default_rng(seed).permutation(n) if shuffle
             else np.arange(n)).astype(np.int64)

    from tfmargin.data.progress import Progress
    from tfmargin.data.tfrecord import METADATA, TFRecordShardWriter

    log(f"teacher signal: embedding {n} images of {src.path}{' (+ flipped)' if flip else ''} "
        f"with {t.where}")
    norm_min, norm_max = math.inf, 0.0
    done = 0
    sums = np.zeros((num_classes, dim)) if means else None
    # everything goes into output_dir.partial, renamed into place at the end
    with atomic_directory(output_dir, staging=output_dir + ".partial", create=True) as stage:
        with TFRecordShardWriter(stage, shards, num_classes=num_classes,
                                 image_size=t.image_size, source=fingerprint["path"]) as writer, \
                Progress(n, "teacher signal", enabled=progress) as bar:
            batches = iter(image_batches(src, order, batch_size, t.image_size, flip))
            while done < n:
                try:
                    data, labels, x = next(batches)
                except StopIteration:
                    raise TeacherSignalError(f"{src.path}: ended after {done} of {n} "
                                             "images", "source") from None
                except tf.errors.OpError as e:
                    error = diagnose(src, order[done:done + 2 * batch_size], e)
                    error.field = "source"
                    raise error from None
                b = len(labels)
                x = x.numpy()
                rows = x.shape[0]
                if rows < batch_size * (2 if flip else 1):  # one input shape: no retracing
                    pad = batch_size * (2 if flip else 1) - rows
                    x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
                emb = np.asarray(t.backbone.predict_on_batch(x), np.float32)[:rows]
                if emb.shape != (rows, dim):
                    raise TeacherSignalError(f"{t.where}: the backbone returned shape "
                                             f"{emb.shape} for {rows} images; expected "
                                             f"({rows}, {dim})", "teacher")
                finite = np.isfinite(emb).all(axis=1)
                if not finite.all():
                    i = order[done + int(np.argmin(finite)) % b]
                    raise TeacherSignalError(f"{t.where}: NaN or inf embedding of {src.path} "
                                             f"record {src.key(i)}", "teacher")
                norms = np.linalg.norm(emb.astype(np.float64), axis=1)
                norm_min, norm_max = min(norm_min, norms.min()), max(norm_max, norms.max())
                flipped = emb[b:] if flip else [None] * b
                labels, data = labels.numpy(), data.numpy()
                if means:  # unit embeddings, so that every image weighs the same
                    np.add.at(sums, labels, emb[:b].astype(np.float64)
                              / np.maximum(norms[:b, None], 1e-12))
                for j in range(b):
                    writer.write(data[j], labels[j], src.key(order[done + j]), emb[j],
                                 flipped[j])
                done += b
                bar.update(b)
        if means:
            centers = _class_means(sums, src.path)
        np.save(os.path.join(stage, CENTERS), centers)
        manifest = {
            "format": FORMAT,
            "tfmargin_version": tfmargin.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "teacher": teacher_info,
            "dataset": {**fingerprint, "num_images": n, "num_classes": num_classes},
            "embedding_size": dim,
            "num_classes": num_classes,
            "num_images": n,
            "flip": bool(flip),
            "embeddings": {
                "dtype": "float32", "as": "the teacher's raw output, not re-normalised",
                # The MarginDistillation head normalises either way.
                "normalised": bool(abs(norm_min - 1) < 1e-3 and abs(norm_max - 1) < 1e-3),
                "norm_min": float(norm_min), "norm_max": float(norm_max),
                "flip": "teacher_flip holds the embedding of the mirrored image" if flip else None,
            },
            "centers": {"file": CENTERS, "sha256": sha256_file(os.path.join(stage, CENTERS)),
                        "shape": [dim, num_classes], "from": centers_from, "normalised": True},
            "order": (f"a permutation of the dataset (seed {seed}): its record i is record "
                      f"i // {shards} of shard i % {shards}; keys name the dataset's records"
                      if shuffle else f"image i of the dataset is record i // {shards} of "
                      f"shard i % {shards}"),
            "shuffle": {"seed": seed} if shuffle else None,
            "shards": [{"file": name, "records": count,
                        "sha256": sha256_file(os.path.join(stage, name))}
                       for name, count in zip(writer.names, writer.counts)],
            "metadata": {"file": METADATA,
                         "sha256": sha256_file(os.path.join(stage, METADATA))},
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json(os.path.join(stage, MANIFEST), manifest)  # last: marks it complete
    log(f"teacher signal: {n} images, {num_classes} classes, {dim}-d"
        f"{' (+ flipped)' if flip else ''}, {shards} shard{'s' * (shards != 1)}, "
        f"{manifest['seconds']:.1f} s -> "
        f"{output_dir}")
    return make_signal(output_dir, manifest, centers)
