"""One shard of a teacher signal at a time: what makes extraction resumable and shareable
between workers.

Shard s of S holds the images at positions s, s + S, s + 2S, ... of the extraction's order (the
round robin the single writer used), so any process can compute any shard alone. A shard is
written to `<name>.tmp`, renamed into place, and then gets its marker `<name>.json` (records,
sha256, embedding norms, largest label); a shard counts as done only when its marker exists and
the file still has the marker's sha256 and record count. A killed worker loses at most the
shard it was writing.
"""

import contextlib
import json
import math
import os

import numpy as np

from tfmargin.atomic import write_json
from tfmargin.distill.checksums import sha256_file
from tfmargin.distill.format import TeacherSignalError
from tfmargin.distill.reader import diagnose, image_batches


def positions(order, shard, shards):
    return order[shard::shards]


def marker_path(stage, name):
    return os.path.join(stage, name + ".json")


def verified(stage, name, records):
    """The shard's marker when the shard is complete and intact, else None."""
    try:
        with open(marker_path(stage, name)) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    path = os.path.join(stage, name)
    if marker.get("records") != records or not os.path.isfile(path) \
            or sha256_file(path) != marker.get("sha256"):
        return None
    return marker


def embed_shard(stage, name, src, order, teacher, dim, batch_size, flip, progress=None):
    """Embed the images at `order` with `teacher` and write them as shard `name` of `stage`
    (file, then marker); returns the marker. `progress(images)` after each batch."""
    n = len(order)
    tmp = os.path.join(stage, f"{name}.tmp-{os.getpid()}")  # two copies of one worker apart
    try:
        norm_min, norm_max, max_label = _write(tmp, src, order, teacher, dim, batch_size, flip,
                                               progress)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)  # a failed shard leaves nothing of itself
        raise
    os.replace(tmp, os.path.join(stage, name))
    marker = {"file": name, "records": n, "sha256": sha256_file(os.path.join(stage, name)),
              "norm_min": float(norm_min), "norm_max": float(norm_max), "max_label": max_label}
    write_json(marker_path(stage, name), marker)  # last: the shard is done
    return marker


def _write(tmp, src, order, teacher, dim, batch_size, flip, progress):
    """Write the shard's records to `tmp`; returns (smallest and largest embedding norm,
    largest label)."""
    import tensorflow as tf

    from tfmargin.data.tfrecord import make_example

    n = len(order)
    norm_min, norm_max, max_label, done = math.inf, 0.0, -1, 0
    rows_per_call = batch_size * (2 if flip else 1)
    with tf.io.TFRecordWriter(tmp) as writer:
        batches = iter(image_batches(src, order, batch_size, teacher.image_size, flip))
        while done < n:
            try:
                data, labels, x = next(batches)
            except StopIteration:
                raise TeacherSignalError(f"{src.path}: ended after {done} of {n} images of "
                                         f"shard {os.path.basename(tmp).split('.tmp-')[0]}", "source") from None
            except tf.errors.OpError as e:
                error = diagnose(src, order[done:done + 2 * batch_size], e)
                error.field = "source"
                raise error from None
            b, x = len(labels), x.numpy()
            rows = x.shape[0]
            if rows < rows_per_call:  # one input shape: no retracing
                x = np.concatenate([x, np.zeros((rows_per_call - rows, *x.shape[1:]), x.dtype)])
            emb = np.asarray(teacher.backbone.predict_on_batch(x), np.float32)[:rows]
            if emb.shape != (rows, dim):
                raise TeacherSignalError(f"{teacher.where}: the backbone returned shape "
                                         f"{emb.shape} for {rows} images; expected ({rows}, "
                                         f"{dim})", "teacher")
            finite = np.isfinite(emb).all(axis=1)
            if not finite.all():
                i = order[done + int(np.argmin(finite)) % b]
                raise TeacherSignalError(f"{teacher.where}: NaN or inf embedding of {src.path} "
                                         f"record {src.key(i)}", "teacher")
            norms = np.linalg.norm(emb.astype(np.float64), axis=1)
            norm_min, norm_max = min(norm_min, norms.min()), max(norm_max, norms.max())
            labels, data = labels.numpy(), data.numpy()
            max_label = max(max_label, int(labels.max()))
            for j in range(b):
                writer.write(make_example(data[j], labels[j], src.key(order[done + j]), emb[j],
                                          emb[b + j] if flip else None))
            done += b
            if progress is not None:
                progress(b)
    return norm_min, norm_max, max_label


def class_sums(stage, names, num_classes, dim):
    """Per-class sums of the unit teacher embeddings stored in the shards (class_means)."""
    import tensorflow as tf

    from tfmargin.data.tfrecord import feature_spec

    spec = {k: v for k, v in feature_spec(dim).items() if k in ("label", "teacher")}
    sums = np.zeros((num_classes, dim))
    ds = tf.data.TFRecordDataset([os.path.join(stage, n) for n in names]).batch(1024)
    for batch in ds.map(lambda r: tf.io.parse_example(r, spec)):
        emb = batch["teacher"].numpy().astype(np.float64)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        np.add.at(sums, batch["label"].numpy(), emb)
    return sums
