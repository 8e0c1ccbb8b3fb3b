"""TFRecord shards of face images, optionally with the teacher's embeddings.

Each record is a tf.train.Example with
  image         bytes   the encoded image (JPEG as in the .rec it came from)
  label         int64   class id
  key           bytes   where it came from (the .rec key or the folder path), for messages
  teacher       float*D the teacher's embedding of the image (optional)
  teacher_flip  float*D the teacher's embedding of the horizontally flipped image (optional)
Shards are named `{prefix}-00000-of-00008.tfrecord`; `dataset.json` beside them records the
counts, num_classes, the teacher dimension and whether flipped embeddings are present.
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf

from tfmargin.atomic import AllOrNothing, write_json
from tfmargin.errors import TfmarginError, op_message

METADATA = "dataset.json"


class TFRecordError(TfmarginError, ValueError):
    """TFRecord shards or their dataset.json that cannot be trusted; the message names the
    file (and the field or shard)."""


LIMITS = {"teacher_dim": 1 << 16, "image_size": 1 << 14, "num_classes": (1 << 31) - 1}
MAX_COUNT = 1 << 48  # records: far beyond any dataset, far inside int64 and float64


def _count(value, path, field, positive=False, limit=MAX_COUNT):
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
        raise TFRecordError(f"{path}: {field} must be a {'positive' if positive else 'non-negative'}"
                            f" integer, got {str(value)[:40]!r}")
    if value > limit:  # before TensorFlow turns it into an int32 / int64 and overflows
        raise TFRecordError(f"{path}: {field} {str(value)[:40]} is over its limit {limit}")
    return value


def read_metadata(directory):
    """dataset.json of a shard directory, checked (types, counts, shard names that stay inside
    the directory, no empty shard where records are counted); None when there is none."""
    path = os.path.join(directory, METADATA)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, RecursionError) as e:  # bad UTF-8 / JSON, nesting, 5000-digit ints
        raise TFRecordError(f"{path}: not valid JSON ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None
    if not isinstance(meta, dict):
        raise TFRecordError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    shards = meta.get("shards")
    if not isinstance(shards, list) or not shards or not all(isinstance(n, str) for n in shards):
        raise TFRecordError(f"{path}: 'shards' must be a non-empty list of file names")
    if len(set(shards)) != len(shards):
        raise TFRecordError(f"{path}: a shard is listed twice")
    for name in shards:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise TFRecordError(f"{path}: shard {name!r} is not a file name inside "
                                f"{directory}; shards must sit beside dataset.json")
    counts = meta.get("counts")
    if counts is not None:
        if not isinstance(counts, list) or len(counts) != len(shards):
            raise TFRecordError(f"{path}: 'counts' must list one count per shard")
        for c in counts:
            _count(c, path, "each count")
    for field in ("num_examples", "num_classes", "teacher_dim", "image_size"):
        if meta.get(field) is not None:
            _count(meta[field], path, field, positive=field != "num_examples",
                   limit=LIMITS.get(field, MAX_COUNT))
    if counts is None and meta.get("num_examples") is not None:
        # nothing holds an unverifiable total to the shards: a stream cut to it would repeat
        # records (or stop early) without a word
        raise TFRecordError(f"{path}: num_examples without per-shard 'counts'; give both (as "
                            "tfmargin writes them) or neither")
    if counts is not None and meta.get("num_examples") is not None \
            and sum(counts) != meta["num_examples"]:
        raise TFRecordError(f"{path}: num_examples {meta['num_examples']} is not the sum of the "
                            f"shard counts ({sum(counts)})")
    if not isinstance(meta.get("teacher_flip", False), bool):
        raise TFRecordError(f"{path}: teacher_flip must be true or false")
    for i, name in enumerate(shards):
        shard = os.path.join(directory, name)
        if not os.path.isfile(shard):
            raise TFRecordError(f"{path}: lists shard {shard}, which does not exist")
        if counts is not None and counts[i] and os.path.getsize(shard) == 0:
            raise TFRecordError(f"{shard}: empty, but {METADATA} counts {counts[i]} records in "
                                "it")
    return meta


def shard_name(prefix, index, count):
    return f"{prefix}-{index:05d}-of-{count:05d}.tfrecord"


def make_example(image, label, key="", teacher=None, teacher_flip=None):
    """Serialized tf.train.Example bytes of one record."""
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(image)])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(key).encode()])),
    }
    if teacher is not None:
        feature["teacher"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=np.asarray(teacher, np.float32).reshape(-1)))
    if teacher_flip is not None:
        feature["teacher_flip"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=np.asarray(teacher_flip, np.float32).reshape(-1)))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class TFRecordShardWriter(AllOrNothing):
    """Writes records round-robin into `num_shards` shards plus `dataset.json`, atomically.

        with TFRecordShardWriter("shards/", num_shards=8, num_classes=1000) as w:
            w.write(jpeg, label, key, teacher=emb, teacher_flip=emb_flip)
    """

    def __init__(self, output_dir, num_shards=1, *, prefix="train", num_classes=None,
                 image_size=112, source=None):
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self.output_dir = os.fspath(output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        self.prefix = prefix
        self.num_shards = num_shards
        self.num_classes = num_classes
        self.image_size = image_size
        self.source = source
        self.names = [shard_name(prefix, i, num_shards) for i in range(num_shards)]
        self._tmp = [os.path.join(self.output_dir, n + ".tmp") for n in self.names]
        self._writers = [tf.io.TFRecordWriter(p) for p in self._tmp]
        self.counts = [0] * num_shards
        self.teacher_dim = None
        self.has_teacher_flip = None
        self._max_label = -1
        self._closed = False

    @property
    def count(self):
        return sum(self.counts)

    def write(self, image, label, key="", teacher=None, teacher_flip=None):
        dim = None if teacher is None else int(np.size(teacher))
        if self.count == 0:
            self.teacher_dim, self.has_teacher_flip = dim, teacher_flip is not None
        elif dim != self.teacher_dim or (teacher_flip is not None) != self.has_teacher_flip:
            raise ValueError(f"{self.output_dir}: record {key} has teacher dim {dim} / "
                             f"teacher_flip {teacher_flip is not None}, unlike the records "
                             f"before it ({self.teacher_dim} / {self.has_teacher_flip})")
        if teacher_flip is not None and int(np.size(teacher_flip)) != dim:
            raise ValueError(f"{self.output_dir}: record {key}: teacher_flip size "
                             f"{np.size(teacher_flip)} != teacher size {dim}")
        shard = self.count % self.num_shards
        self._writers[shard].write(make_example(image, label, key, teacher, teacher_flip))
        self.counts[shard] += 1
        self._max_label = max(self._max_label, int(label))

    def close(self):
        if self._closed:
            return
        self._closed = True
        for w in self._writers:
            w.close()
        for tmp, name in zip(self._tmp, self.names):
            os.replace(tmp, os.path.join(self.output_dir, name))
        meta = {
            "format": "tfmargin-tfrecord-v1",
            "num_examples": self.count,
            "num_classes": (self.num_classes if self.num_classes is not None
                            else self._max_label + 1),
            "image_size": self.image_size,
            "teacher_dim": self.teacher_dim,
            "teacher_flip": bool(self.has_teacher_flip),
            "shards": self.names,
            "counts": self.counts,
            "source": self.source,
        }
        write_json(os.path.join(self.output_dir, METADATA), meta)

    def abort(self):
        self._closed = True
        for w, tmp in zip(self._writers, self._tmp):
            w.close()
            if os.path.exists(tmp):
                os.remove(tmp)


def tfrecord_files(source):
    """(sorted shard paths, metadata dict or None) of a directory, a glob pattern or one file."""
    source = os.fspath(source)
    if os.path.isdir(source):
        directory = source
        meta = read_metadata(source)
        if meta is not None:
            return [os.path.join(source, n) for n in meta["shards"]], meta
        files = sorted(glob.glob(os.path.join(source, "*.tfrecord")))
    else:
        files = sorted(glob.glob(source))
        directory = os.path.dirname(files[0]) if files else ""
    if not files:
        raise TFRecordError(f"{source}: no TFRecord shards found")
    meta = read_metadata(directory)
    if meta is not None:  # a pattern picks some files: their counts, by name (-1: not listed)
        listed = dict(zip(meta["shards"], meta.get("counts") or [-1] * len(meta["shards"])))
        counts = [listed.get(os.path.basename(f), -1) for f in files]
        meta = {**meta, "shards": [os.path.basename(f) for f in files], "counts": counts,
                "num_examples": sum(counts) if min(counts) >= 0 else None}
    else:
        counts = [-1] * len(files)
    empty = [f for f, c in zip(files, counts) if c != 0 and os.path.getsize(f) == 0]
    if empty:  # a stream of nothing would spin forever once repeated
        raise TFRecordError(f"{empty[0]}: empty TFRecord shard")
    return files, meta


def infer_features(files):
    """(teacher_dim, has_teacher_flip) read from the first record when there is no metadata."""
    from google.protobuf.message import DecodeError

    try:
        raws = [raw.numpy() for raw in tf.data.TFRecordDataset(files[:1]).take(1)]
    except tf.errors.OpError as e:
        raise TFRecordError(f"{files[0]}: record 0: {op_message(e)}") from None
    for raw in raws:
        try:
            ex = tf.train.Example.FromString(raw)
        except DecodeError as e:
            raise TFRecordError(f"{files[0]}: record 0 is not a tf.train.Example ({e})") from None
        feats = ex.features.feature
        dim = len(feats["teacher"].float_list.value) if "teacher" in feats else None
        return dim, "teacher_flip" in feats
    return None, False


def feature_spec(teacher_dim=None, teacher_flip=False):
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "key": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    if teacher_dim:
        spec["teacher"] = tf.io.FixedLenFeature([teacher_dim], tf.float32)
        if teacher_flip:
            spec["teacher_flip"] = tf.io.FixedLenFeature([teacher_dim], tf.float32)
    return spec


def counted_shard(path, count):
    """The records of one shard, asserted (as they stream) to number what dataset.json counts:
    a shard cut at a record boundary is still valid TFRecord, just shorter."""
    return tf.data.TFRecordDataset(path).apply(tf.data.experimental.assert_cardinality(count))


def tfrecord_dataset(source, *, teacher=True):
    """The reader: a Dataset of parsed records {image (encoded bytes), label int64, key,
    teacher?, teacher_flip?} in shard order, without decoding (see pipeline.train_dataset for
    training batches). Checked as it streams: every image non-empty, every label in
    0..num_classes-1 and every shard as long as dataset.json counts; a failure is TensorFlow's
    error with the source's path in it (`tfmargin.data.pipeline.named_errors` makes it one
    line)."""
    files, meta = tfrecord_files(source)
    meta = meta or {}
    if meta:
        dim, flip = meta.get("teacher_dim"), meta.get("teacher_flip", False)
    else:
        dim, flip = infer_features(files)
    spec = feature_spec(dim if teacher else None, flip)
    counts, num_classes = meta.get("counts"), meta.get("num_classes")
    if counts and min(counts) >= 0:
        ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(counts, tf.int64)))
        ds = ds.flat_map(tf.autograph.experimental.do_not_convert(counted_shard))
    else:
        ds = tf.data.TFRecordDataset(files)
    where = os.fspath(source)

    @tf.autograph.experimental.do_not_convert  # plain graph code; AutoGraph only warns on it
    def parse(serialized):
        e = tf.io.parse_single_example(serialized, spec)
        record = tf.strings.join([f"{where}: record ", e["key"], ": "])
        checks = [tf.debugging.Assert(tf.strings.length(e["image"]) > 0,
                                      [tf.strings.join([record, "empty image"])])]
        if num_classes:
            ok = tf.logical_and(e["label"] >= 0, e["label"] < num_classes)
            checks.append(tf.debugging.Assert(ok, [tf.strings.join(
                [record, "label ", tf.strings.as_string(e["label"]),
                 f" outside 0..{num_classes - 1}"])]))
        with tf.control_dependencies(checks):
            return {k: tf.identity(v) for k, v in e.items()}

    return ds.map(parse)


def check_shards(source, num_classes=None, on_image=None):
    """Read every record of every shard of `source` in Python and check it: it parses, its
    label is in 0..num_classes-1 (default: dataset.json's num_classes), its image is not empty,
    and each shard holds the records dataset.json counts. TFRecordError naming the shard and
    the record's position in it on the first problem; returns the total record count. What a
    training stream's edge calls to name the shard behind one of TensorFlow's errors (which
    say "corrupted record at 184831" but not where), and what a user may call on shards of
    unknown provenance. `on_image(shard_path, position, encoded_bytes)` sees every image (the
    `prepare check` task test-decodes them there)."""
    files, meta = tfrecord_files(source)
    meta = meta or {}
    num_classes = num_classes or meta.get("num_classes")
    try:
        dim, flip = (meta.get("teacher_dim"), meta.get("teacher_flip", False)) if meta \
            else infer_features(files)
    except Exception as e:  # noqa: BLE001 - the first record is damaged: name its shard
        raise TFRecordError(f"{files[0]}: record 0: {str(e).splitlines()[0][:200]}") from None
    spec = feature_spec(dim, flip)
    counts = meta.get("counts")
    total = 0
    for i, path in enumerate(files):
        n = 0
        try:
            for raw in tf.data.TFRecordDataset(path):
                e = tf.io.parse_single_example(raw, spec)
                label = int(e["label"])
                if label < 0 or (num_classes and label >= num_classes):
                    raise TFRecordError(f"{path}: record {n} has label {label}, outside "
                                        f"0..{num_classes - 1 if num_classes else 'inf'}")
                image = e["image"].numpy()
                if not len(image):
                    raise TFRecordError(f"{path}: record {n} has an empty image")
                if on_image is not None:
                    on_image(path, n, image)
                n += 1
        except tf.errors.OpError as e:
            raise TFRecordError(f"{path}: record {n}: {op_message(e)}") from None
        if counts is not None and counts[i] >= 0 and n != counts[i]:
            raise TFRecordError(f"{path}: holds {n} records but {METADATA} counts {counts[i]} "
                                "(truncated or replaced)")
        total += n
    return total
