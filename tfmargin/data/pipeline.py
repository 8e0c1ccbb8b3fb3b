"""tf.data pipelines: training batches from a .rec, TFRecord shards or identity folders, and
verification pairs from an insightface .bin.

Training data flow (every stage parallel, nothing waits on Python per image):

  .rec / folders:  per-epoch permutation of positions (stateless, seeded) -> chunks of one
                   batch -> Python chunk reader (os.pread per record, headers parsed with
                   numpy; the chunk crosses into TensorFlow as one buffer, cut by Substr)
  TFRecord:        per pass: shuffled shard list -> interleaved TFRecordDataset -> shuffle
                   buffer -> chunks of one batch -> vectorised parse_example
  then:            parallel per-chunk decode (+ optional flip; a corrupt image is dropped
                   inside its chunk, so no other error can be swallowed) -> rebatch (slices
                   whole-batch chunks, no copy) -> [-1, 1] float32 in one pass (Dequantize)
                   -> prefetch

Where the CPU goes (bench row data_pipeline, bench/results/data_pipeline.json, 2 shared
cores): about 165 us per image against 174 us for a Python tf.io.decode_jpeg loop (ratio 1.05;
it was 0.67-0.77 with per-image hand-offs to the inter-op pool). JPEG decoding is ~55-60% of it:
each image is decoded inline by the single-threaded executor. The float conversion of a batch
is the next item, 13-28 us per image (a 256-image float32 batch is 38.5 MB, written once, and
the baseline produces no float at all), then the chunk copy (~8 us), the nested per-image
dataset (~10 us) and the record reader (~4.5 us).

Corrupt images are counted in `dataset.stats` (a PipelineStats); the Keras callback from
`skipped_images_report` prints the count at the end of each epoch. With strict=True the first
corrupt image stops iteration with an error naming its record.
"""

import logging
import os
import threading

import numpy as np
import tensorflow as tf

from tfmargin.data.images import decode_tensor, resize_tensor
from tfmargin.data.sources import IndexedSource, load_array, source_kind
from tfmargin.data.tfrecord import feature_spec, infer_features, tfrecord_files

AUTOTUNE = tf.data.AUTOTUNE
log = logging.getLogger(__name__)


class PipelineStats:
    """Counts shared by a pipeline's stages: images delivered in batches, and corrupt images
    skipped. A corrupt image is counted when the stream reaches it, i.e. when the batch it would
    have joined is formed, so per-epoch counts are exact."""

    def __init__(self, give_up_after=None):
        self._lock = threading.Lock()
        self.delivered = 0
        self.skipped = 0
        self._mark = (0, 0)
        self._streak = 0
        self.give_up_after = give_up_after
        self.where = ""

    def add_skipped(self, n):
        with self._lock:
            self.skipped += int(n)
            self._streak += int(n)
            streak = self._streak
        # An endless stream of undecodable images would otherwise spin forever.
        if self.give_up_after is not None and streak > self.give_up_after:
            raise ValueError(f"{self.where}: {streak} images in a row failed to decode; the "
                             "source looks unreadable (run with strict=True to see the first)")
        return np.int64(n)

    def add_batch(self, delivered, skipped):
        """One batch: `delivered` images, `skipped` corrupt images met while forming it."""
        if skipped:
            self.add_skipped(skipped)
        return self.add_delivered(delivered)

    def add_delivered(self, n):
        with self._lock:
            self.delivered += int(n)
            self._streak = 0
        return np.int64(n)

    @property
    def read(self):
        return self.delivered + self.skipped

    def since_mark(self):
        """(images delivered, corrupt images skipped) since the last mark(), e.g. an epoch."""
        return self.delivered - self._mark[0], self.skipped - self._mark[1]

    def mark(self):
        self._mark = (self.delivered, self.skipped)

    def __repr__(self):
        return f"PipelineStats(delivered={self.delivered}, skipped={self.skipped})"


def normalize(images):
    """uint8 -> float32 (x - 127.5) / 127.5 in one pass: Dequantize's MIN_COMBINED mode computes
    min + x * (max - min) / 255 with min=-1, max=1, i.e. exactly that mapping."""
    return tf.quantization.dequantize(tf.bitcast(images, tf.quint8), -1.0, 1.0,
                                      mode="MIN_COMBINED")


def _object_array(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _epoch_seeds(seed, repeat):
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return seeds if repeat else seeds.take(1)


def _seed_pair(r, salt):
    return tf.stack([r, tf.constant(salt, tf.int64)])


def _indexed_chunks(src, positions, *, shuffle, flip, seed, repeat, read_chunk, teacher,
                    teacher_flip, teacher_from_labels, deterministic, strict=False):
    """Chunks {image, label, key, flip, teacher?, teacher_flip?} of a .rec / folder source."""
    n = len(positions)
    pos_t = tf.constant(positions, tf.int64)
    with_teacher = teacher is not None or teacher_from_labels
    label_index = getattr(src.reader, "label_index", 0)
    dim = None
    if teacher is not None:
        dim = teacher.shape[1]
    elif teacher_from_labels:
        dim = len(src.read(int(positions[0]))[2]) - 1
        if dim < 1:
            raise ValueError(f"{src.path}: teacher='labels' needs multi-float labels "
                             "(embedding + class)")

    def epoch(r):
        perm = (tf.random.experimental.stateless_shuffle(pos_t, seed=_seed_pair(r, 1))
                if shuffle else pos_t)
        flips = tf.random.stateless_uniform([n], seed=_seed_pair(r, 2)) < 0.5
        if not flip:
            flips = tf.zeros([n], tf.bool)
        return tf.data.Dataset.from_tensor_slices((perm, flips)).batch(read_chunk)

    def read(positions_chunk):
        # One bytes buffer per chunk (split into images by Substr below): no per-image Python
        # objects cross into TensorFlow.
        if teacher_from_labels:
            images, labels, teachers = [], [], []
            for i in positions_chunk:
                data, label, float_labels = src.read(int(i))
                images.append(data)
                labels.append(label)
                emb = list(float_labels)
                del emb[label_index]
                teachers.append(emb)
            lengths = np.fromiter(map(len, images), np.int64, len(images))
            packed = (b"".join(images), np.cumsum(lengths) - lengths, lengths,
                      np.asarray(labels, np.int32))
        else:
            packed = src.read_packed(positions_chunk)
        data, starts, lengths, labels = packed
        # Keys only name records in strict-mode errors; skip the work otherwise.
        keys = [src.key(int(i)).encode() if strict else b"" for i in positions_chunk]
        out = [np.array(data, dtype=object), starts, lengths, labels, _object_array(keys)]
        if teacher is not None:
            out.append(np.asarray(teacher[positions_chunk], np.float32))
            if teacher_flip is not None:
                out.append(np.asarray(teacher_flip[positions_chunk], np.float32))
        elif teacher_from_labels:
            out.append(np.asarray(teachers, np.float32).reshape(len(positions_chunk), dim))
        return out

    tout = [tf.string, tf.int64, tf.int64, tf.int32, tf.string]
    if with_teacher:
        tout.append(tf.float32)
        if teacher_flip is not None:
            tout.append(tf.float32)

    def read_chunk_fn(perm, flips):
        outs = tf.numpy_function(read, [perm], tout, stateful=True)
        data, starts, lengths = outs[0], outs[1], outs[2]
        data.set_shape([])
        chunk = {"image": tf.strings.substr(data, starts, lengths), "label": outs[3],
                 "key": outs[4], "flip": flips}
        for t in (chunk["image"], chunk["label"], chunk["key"]):
            t.set_shape([None])
        if with_teacher:
            outs[5].set_shape([None, dim])
            chunk["teacher"] = outs[5]
            if teacher_flip is not None:
                outs[6].set_shape([None, dim])
                chunk["teacher_flip"] = outs[6]
        return chunk

    # Endless streams carry an epoch's short last chunk over into the next epoch's, so every
    # chunk is full and batches stay aligned with chunks (rebatch then slices without copying).
    ds = _epoch_seeds(seed, repeat).flat_map(epoch)
    if repeat:
        ds = ds.rebatch(read_chunk)
    return ds.map(read_chunk_fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic), dim


def _tfrecord_chunks(source, *, shuffle, shuffle_buffer, flip, seed, repeat, read_chunk,
                     num_shards, shard_index, use_teacher, num_classes, deterministic):
    files, meta = tfrecord_files(source)
    if meta is not None:
        dim, has_flip = meta.get("teacher_dim"), meta.get("teacher_flip", False)
        num_classes = num_classes or meta.get("num_classes")
    else:
        dim, has_flip = infer_features(files)
    if not use_teacher:
        dim, has_flip = None, False
    record_sharding = num_shards > 1 and len(files) < num_shards
    if num_shards > 1 and not record_sharding:
        files = files[shard_index::num_shards]
    files = tf.constant(files)

    def one_pass(r):
        # One pass over this worker's records; the shuffle buffer never spans two passes.
        ds = tf.data.Dataset.from_tensor_slices(files)
        if shuffle and not record_sharding:  # record sharding needs one order on all workers
            ds = ds.shuffle(len(files), seed=r, reshuffle_each_iteration=False)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                           block_length=16, num_parallel_calls=AUTOTUNE,
                           deterministic=deterministic)
        if record_sharding:
            ds = ds.shard(num_shards, shard_index)
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=r + 1, reshuffle_each_iteration=False)
        return tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=r + 2))

    ds = _epoch_seeds(seed, repeat).flat_map(one_pass)
    spec = feature_spec(dim, has_flip)
    where = os.fspath(source)

    def parse(serialized, r):
        ex = tf.io.parse_example(serialized, spec)
        label = ex["label"]
        checks = []
        if num_classes:
            bad = tf.logical_or(label < 0, label >= num_classes)
            first = tf.argmax(tf.cast(bad, tf.int32))
            msg = tf.cond(tf.reduce_any(bad), lambda: tf.strings.join(
                [f"{where}: record ", ex["key"][first], " has label ",
                 tf.strings.as_string(label[first]), f", outside 0..{num_classes - 1}"]),
                lambda: tf.constant(""))
            checks.append(tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [msg]))
        with tf.control_dependencies(checks):
            chunk = {"image": tf.identity(ex["image"]), "label": tf.cast(label, tf.int32),
                     "key": ex["key"],
                     "flip": (r % 2 == 0) if flip else tf.zeros_like(r, tf.bool)}
        if dim:
            chunk["teacher"] = ex["teacher"]
            if has_flip:
                chunk["teacher_flip"] = ex["teacher_flip"]
        return chunk

    ds = ds.batch(read_chunk).map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds, dim, has_flip, num_classes


def _inline_map(ds, fn):
    """ds.map(fn) with fn run inline by the single-threaded executor: no hand-off to the
    inter-op thread pool per call, which costs more CPU than the map's own overhead for a
    one-op function like a JPEG decode. fn must be free of control flow (tf.cond, loops).
    Falls back to plain map where TensorFlow lacks the private constructor."""
    try:
        from tensorflow.python.data.ops.map_op import _MapDataset
        return _MapDataset(ds, fn, use_inter_op_parallelism=False, preserve_cardinality=True)
    except (ImportError, TypeError):  # pragma: no cover - other TensorFlow versions
        return ds.map(fn)


def _collect(items, empty):
    """(index, image) of a nested per-image dataset whose failures were dropped: all of them
    in one tensor pair (one op, no per-image thread hand-offs); `empty` when none is left."""
    both = items.batch(1 << 30).concatenate(tf.data.Dataset.from_tensors(empty))
    return both.take(1).get_single_element()


def _decoder(image_size, do_flip, swap_teacher, strict, where, stats, exact=True):
    """Map function: a chunk of encoded records -> its decodable images, decoded.

    Every image is decoded inside a small nested dataset whose `ignore_errors` can only see
    decode failures (the chunk is already in memory; reader and label errors happen upstream
    and propagate). With `exact` (the source's images have the training size, the usual case)
    that dataset runs decode (+ flip) inline on the calling thread and fails an image of
    another size too; any image it drops is retried by the general path, which resizes images
    of another size, so only truly corrupt images end up missing. Without `exact` every image
    takes the general path. The chunk's count of corrupt images rides on its first image
    (`skipped`) and is counted when that image is delivered in a batch; a chunk with no
    decodable image at all is counted right away. In strict mode a missing image is an error
    naming its record.
    """
    empty = (tf.zeros([0], tf.int64), tf.zeros([0, image_size, image_size, 3], tf.uint8))

    def flipped(image, flip):
        # Reverse along width when flip, else along no axis: one op, no control flow.
        return tf.reverse(image, tf.range(tf.cast(flip, tf.int32)) + 1)

    def decode_exact(i, data, *flip):
        image = tf.ensure_shape(decode_tensor(data), [image_size, image_size, 3])
        return i, flipped(image, *flip) if do_flip else image

    def decode_any(i, data, *flip):
        image = resize_tensor(decode_tensor(data), image_size)
        return i, flipped(image, *flip) if do_flip else image

    def items(index, images, flips):
        parts = (index, images, flips) if do_flip else (index, images)
        return tf.data.Dataset.from_tensor_slices(parts)

    def general(index, images, flips):
        return _collect(items(index, images, flips).map(decode_any).ignore_errors(), empty)

    def retry(images, flips, index, decoded):
        # The images the exact path dropped (another size, or corrupt), in chunk order.
        n = tf.shape(images, out_type=tf.int64)[0]
        present = tf.scatter_nd(index[:, None], tf.ones_like(index), [n])
        missing = tf.where(tf.equal(present, 0))[:, 0]
        more_index, more = general(missing, tf.gather(images, missing), tf.gather(flips, missing))
        index = tf.concat([index, more_index], 0)
        order = tf.argsort(index)
        return tf.gather(index, order), tf.gather(tf.concat([decoded, more], 0), order)

    def decode_chunk(chunk):
        images, flips = chunk["image"], chunk["flip"]
        size = tf.shape(images, out_type=tf.int64)[0]
        positions = tf.range(size)
        if exact:
            fast = _inline_map(items(positions, images, flips), decode_exact).ignore_errors()
            index, decoded = _collect(fast, empty)
            index, decoded = tf.cond(
                tf.equal(tf.shape(index, out_type=tf.int64)[0], size),
                lambda: (index, decoded), lambda: retry(images, flips, index, decoded))
        else:
            index, decoded = general(positions, images, flips)
        k = tf.shape(index, out_type=tf.int64)[0]
        checks = []
        if strict:
            present = tf.scatter_nd(index[:, None], tf.ones_like(index), [size])
            first = tf.argmin(present)  # the first missing position when k < size
            msg = tf.cond(tf.equal(k, size), lambda: tf.constant(""), lambda: tf.strings.join(
                [f"{where}: record ", chunk["key"][first], ": corrupt image (strict mode)"]))
            checks.append(tf.debugging.Assert(tf.equal(k, size), [msg]))
        else:
            checks.append(tf.cond(tf.equal(k, 0), lambda: tf.numpy_function(
                stats.add_skipped, [size], tf.int64, stateful=True),
                lambda: tf.constant(0, tf.int64)))
        with tf.control_dependencies(checks):
            out = {"image": tf.identity(decoded), "label": tf.gather(chunk["label"], index),
                   "skipped": tf.where(tf.equal(tf.range(k), 0), size - k,
                                       tf.constant(0, tf.int64))}
        if "teacher" in chunk:
            teacher = chunk["teacher"]
            if swap_teacher:
                teacher = tf.where(flips[:, None], chunk["teacher_flip"], teacher)
            out["teacher"] = tf.gather(teacher, index)
        return out

    return decode_chunk


def _sample_image(source, kind, src):
    """The encoded bytes of the source's first image, or None where it cannot be read."""
    try:
        if kind == "tfrecord":
            files, _ = tfrecord_files(source)
            spec = {"image": tf.io.FixedLenFeature([], tf.string)}
            for raw in tf.data.TFRecordDataset(files[:1]).take(1):
                return tf.io.parse_single_example(raw, spec)["image"].numpy()
            return None
        data, starts, lengths, _ = src.read_packed([0])
        return data[starts[0]:starts[0] + lengths[0]]
    except Exception:  # noqa: BLE001 - bad data is reported, by record, when it is streamed
        return None


def _sizes_match(encoded, image_size):
    """Whether a sample image of the source has the training size (picks the decode path)."""
    if not encoded:
        return True
    try:
        shape = decode_tensor(tf.constant(encoded)).shape
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError):
        return True  # a corrupt sample says nothing; the exact path handles any size anyway
    return tuple(shape[:2]) == (image_size, image_size)


def train_dataset(source, batch_size, *, image_size=112, shuffle=True, shuffle_buffer=10_000,
                  flip=False, teacher=None, teacher_flip=None, seed=None, deterministic=None,
                  drop_remainder=True, input_context=None, num_shards=1, shard_index=0,
                  strict=False, num_classes=None, label_index=0, repeat=False, read_chunk=None,
                  prefetch=AUTOTUNE, stats=None):
    """Training batches `({"image", "label", "teacher"?}, label)` ready for `model.fit`.

    source: a `.rec` (or a directory with `train.rec`), TFRecord shards (directory, pattern or
        file) or identity folders.
    image: float32 (B, image_size, image_size, 3) in [-1, 1], (x - 127.5) / 127.5, RGB; images
        of another size are resized bilinearly. label: int32 (B,).
    teacher: float32 (B, D), present when the source carries teacher embeddings:
        TFRecord shards that hold them (teacher=False leaves them out); for .rec / folders an
        (N, D) array or .npy path aligned with the source's image order (`teacher_flip` the
        same for flipped images), or teacher="labels" for MarginDistillation .rec files whose
        float labels are embedding + class (use label_index=-1).
    flip: random horizontal flips. With a teacher, images are flipped only when flipped-teacher
        embeddings exist, and those replace the teacher's for flipped images; otherwise
        flipping is turned off (logged).
    shuffle: .rec / folders get a full permutation per epoch; TFRecord shards a shuffled shard
        order and a `shuffle_buffer`-record buffer.
    seed: makes the order and the flips reproducible (deterministic defaults to True then, and
        also when shuffle=False, so an unshuffled stream keeps the source's order).
    input_context: a tf.distribute.InputContext (from distribute_datasets_from_function): this
        worker's shard of the data and the per-replica batch size. num_shards/shard_index do
        the same by hand.
    strict: stop at the first corrupt image with an error naming its record, instead of
        skipping it and counting it in `dataset.stats`.
    num_classes: checked against every label (default: the source's own count); a label out
        of range is an error naming the record.
    drop_remainder: full batches only. When the size is known (.rec, folders, TFRecord shards
        with their dataset.json) an epoch is then exactly num_examples // batch_size batches
        (known cardinality), and images skipped as corrupt are made up from the next
        permutation. Without it the last batch may be short.
    repeat: loop over epochs forever (each with a fresh permutation).
    read_chunk: records read and decoded together (default: the batch size, at least 64 and
        at most 1024, as a multiple of the batch size below 64); a chunk is the unit of
        parallel work.

    The returned dataset has `.stats` (PipelineStats), `.num_examples` (images per epoch for
    this shard), `.num_classes` and `.teacher_dim`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if input_context is not None:
        num_shards = input_context.num_input_pipelines
        shard_index = input_context.input_pipeline_id
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} not in 0..{num_shards - 1}")
    if deterministic is None:  # an unshuffled stream keeps the source's order
        deterministic = seed is not None or not shuffle
    if read_chunk is None:  # whole batches per chunk: rebatch then slices, never copies
        read_chunk = (min(batch_size, 1024) if batch_size >= 64
                      else -(-64 // batch_size) * batch_size)
    stats = stats or PipelineStats()
    kind = source_kind(source)
    where = os.fspath(source)

    if kind == "tfrecord":
        if (teacher is not None and not isinstance(teacher, bool)) or teacher_flip is not None:
            raise ValueError(f"{where}: TFRecord shards carry their own teacher embeddings; "
                             "pass teacher=False to leave them out, not arrays")
        _, meta = tfrecord_files(source)
        num_examples = None
        if meta is not None:
            counts = meta.get("counts") or []
            if num_shards == 1:
                num_examples = meta.get("num_examples")
            elif len(counts) >= num_shards:
                num_examples = int(sum(counts[shard_index::num_shards]))
    else:
        src = IndexedSource(source, label_index=label_index, num_classes=num_classes)
        num_classes = src.num_classes
        positions = np.arange(len(src), dtype=np.int64)[shard_index::num_shards]
        num_examples = len(positions)
        if num_examples == 0:
            raise ValueError(f"{where}: shard {shard_index} of {num_shards} is empty")

    # With drop_remainder and a known size, an epoch is exactly num_examples // batch_size
    # batches, cut from an endless stream: the cardinality is known (Keras shows progress, step
    # schedules line up) and skipped corrupt images are replaced by the next permutation's.
    fixed_epoch = drop_remainder and not repeat and num_examples is not None
    if fixed_epoch and num_examples < batch_size:
        raise ValueError(f"{where}: {num_examples} images, fewer than one batch of {batch_size}")
    endless = repeat or fixed_epoch

    if kind == "tfrecord":
        chunks, dim, has_flip, num_classes = _tfrecord_chunks(
            source, shuffle=shuffle, shuffle_buffer=shuffle_buffer, flip=flip, seed=seed,
            repeat=endless, read_chunk=read_chunk, num_shards=num_shards,
            shard_index=shard_index, use_teacher=teacher is not False, num_classes=num_classes,
            deterministic=deterministic)
    else:
        from_labels = isinstance(teacher, str) and teacher == "labels"
        if from_labels and src.kind != "rec":
            raise ValueError(f"{where}: teacher='labels' needs a .rec source")
        teacher_arr = (None if from_labels or teacher is False
                       else load_array(teacher, "teacher", len(src)))
        teacher_flip_arr = load_array(teacher_flip, "teacher_flip", len(src))
        if teacher_flip_arr is not None and teacher_arr is None:
            raise ValueError("teacher_flip given without teacher")
        chunks, dim = _indexed_chunks(
            src, positions, shuffle=shuffle, flip=flip, seed=seed, repeat=endless,
            read_chunk=read_chunk, teacher=teacher_arr, teacher_flip=teacher_flip_arr,
            teacher_from_labels=from_labels, deterministic=deterministic, strict=strict)
        has_flip = teacher_flip_arr is not None

    exact = _sizes_match(_sample_image(source, kind, src if kind != "tfrecord" else None),
                         image_size)
    do_flip = bool(flip)
    if flip and dim and not has_flip:
        log.warning("%s: flip turned off: the teacher embeddings have no flipped counterpart "
                    "(teacher_flip), and flipping would break them", where)
        do_flip = False
    stats.where = where
    if endless:
        stats.give_up_after = max(num_examples or 0, 10 * read_chunk) + batch_size
    decode_chunk = _decoder(image_size, do_flip, do_flip and bool(dim), strict, where, stats,
                            exact)
    ds = chunks.map(decode_chunk, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # Slices of whole-batch chunks (no copy); only a chunk cut short by a corrupt image
    # makes it copy.
    ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    if fixed_epoch:
        # take() of an endless stream always yields them all (or give_up_after raises).
        ds = ds.take(num_examples // batch_size).apply(
            tf.data.experimental.assert_cardinality(num_examples // batch_size))

    def finish(e):
        skipped = tf.reduce_sum(e["skipped"])
        counted = tf.numpy_function(stats.add_batch, [tf.shape(e["label"])[0], skipped],
                                    tf.int64, stateful=True)
        with tf.control_dependencies([counted]):
            features = {"image": normalize(e["image"]), "label": tf.identity(e["label"])}
        if "teacher" in e:
            features["teacher"] = e["teacher"]
        return features, features["label"]

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.prefetch(prefetch)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    if num_shards > 1:  # sharded here already: tf.distribute must not shard again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    ds = ds.with_options(options)
    ds.stats = stats
    ds.num_examples = num_examples
    ds.num_classes = num_classes
    ds.teacher_dim = dim
    ds.batch_size = batch_size
    return ds


def verification_dataset(bin_path, batch_size=64, image_size=112):
    """Batches `(image, flipped_image)` float32 (B, size, size, 3) in [-1, 1] of an insightface
    verification .bin, in file order (pair i = images 2i and 2i+1). The dataset carries
    `.issame` (bool (N,)) and `.num_images`."""
    from tfmargin.data.verification_bin import load_verification_encoded

    encoded, issame = load_verification_encoded(bin_path)
    where = os.fspath(bin_path)
    index = tf.data.Dataset.from_tensor_slices(
        (tf.constant(encoded, tf.string), tf.range(len(encoded), dtype=tf.int64)))

    def decode(data, i):
        ok = tf.strings.length(data) > 0
        with tf.control_dependencies([tf.debugging.Assert(ok, [where, ": image", i, "empty"])]):
            return resize_tensor(decode_tensor(data), image_size)

    ds = index.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True).batch(batch_size)
    ds = ds.map(lambda x: (normalize(x), normalize(tf.reverse(x, [2]))),
                num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)
    ds.issame = issame
    ds.num_images = len(encoded)
    return ds


def skipped_images_report(stats, print_fn=print):
    """A Keras callback that prints the corrupt images skipped in each epoch and logs the count
    as `skipped_images`:

        model.fit(ds, callbacks=[skipped_images_report(ds.stats)])
    """
    import keras  # lazily: importing tfmargin.data must not fix the Keras backend

    class SkippedImagesReport(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            stats.mark()

        def on_epoch_end(self, epoch, logs=None):
            delivered, skipped = stats.since_mark()
            if logs is not None:
                logs["skipped_images"] = skipped
            if skipped:
                print_fn(f"epoch {epoch + 1}: skipped {skipped} corrupt image(s), delivered "
                         f"{delivered} ({stats.skipped} skipped in total)")

    return SkippedImagesReport()
