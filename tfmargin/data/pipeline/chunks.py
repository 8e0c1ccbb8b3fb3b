"""The sources as streams of chunks (one batch of encoded records each): .rec and identity
folders through a Python chunk reader, TFRecord shards through parse_example."""

import os

import numpy as np
import tensorflow as tf

from tfmargin.data.tfrecord import counted_shard, feature_spec, infer_features, tfrecord_files

AUTOTUNE = tf.data.AUTOTUNE


def _object_array(items):
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _epoch_seeds(seed, repeat):
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return seeds if repeat else seeds.take(1)


def _without_global_seed():
    """Called while a pass is traced. With the global seed 0 (keras.utils.set_random_seed(0),
    tf.random.set_seed(0)), TensorFlow's get_seed compares the pair (0, r) with (0, 0) as
    Python values and fails on the symbolic r ("Using a symbolic tf.Tensor as a Python bool");
    any other global seed works. For that one seed the pass is traced as if no global seed were
    set; every other case keeps the order it always had (runs in progress resume unchanged)."""
    graph = tf.compat.v1.get_default_graph()
    if graph.seed is not None and graph.seed % (2 ** 31 - 1) == 0:
        graph.seed = None


def _seed_pair(r, salt):
    return tf.stack([r, tf.constant(salt, tf.int64)])


def indexed_chunks(src, positions, *, shuffle, flip, seed, repeat, read_chunk, teacher,
                    teacher_flip, teacher_from_labels, deterministic, strict=False,
                    images_per_identity=0):
    """Chunks {image, label, key, flip, teacher?, teacher_flip?} of a .rec / folder source;
    with images_per_identity=K each pass is in P x K identity order (tfmargin.data.sampling)."""
    pos_t = tf.constant(positions, tf.int64)
    if images_per_identity:
        from tfmargin.data.sampling import identity_groups

        labels_t = tf.constant(np.asarray(src.labels(), np.int64)[positions])
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
        if images_per_identity:
            perm = identity_groups(pos_t, labels_t, images_per_identity, _seed_pair(r, 1))
        else:
            perm = (tf.random.experimental.stateless_shuffle(pos_t, seed=_seed_pair(r, 1))
                    if shuffle else pos_t)
        flips = tf.random.stateless_uniform(tf.shape(perm), seed=_seed_pair(r, 2)) < 0.5
        if not flip:
            flips = tf.zeros(tf.shape(perm), tf.bool)
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
                 "key": outs[4], "position": perm, "flip": flips}
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


def tfrecord_chunks(source, *, shuffle, shuffle_buffer, flip, seed, repeat, read_chunk,
                     num_shards, shard_index, use_teacher, num_classes, deterministic):
    files, meta = tfrecord_files(source)
    if meta is not None:
        dim, has_flip = meta.get("teacher_dim"), meta.get("teacher_flip", False)
        num_classes = num_classes or meta.get("num_classes")
    else:
        dim, has_flip = infer_features(files)
    if not use_teacher:
        dim, has_flip = None, False
    # each shard must hold what dataset.json counts: a shard cut at a record boundary would
    # otherwise just give fewer records
    counts = (meta or {}).get("counts") or [-1] * len(files)
    checked = min(counts) >= 0
    record_sharding = num_shards > 1 and len(files) < num_shards
    if num_shards > 1 and not record_sharding:
        files, counts = files[shard_index::num_shards], counts[shard_index::num_shards]
    files, counts = tf.constant(files), tf.constant(counts, tf.int64)

    def read_shard(path, count):
        return counted_shard(path, count) if checked else tf.data.TFRecordDataset(path)

    def one_pass(r):
        # One pass over this worker's records; the shuffle buffer never spans two passes.
        _without_global_seed()
        ds = tf.data.Dataset.from_tensor_slices((files, counts))
        if shuffle and not record_sharding:  # record sharding needs one order on all workers
            ds = ds.shuffle(len(files), seed=r, reshuffle_each_iteration=False)
        ds = ds.interleave(read_shard, cycle_length=min(len(files), 8),
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
                     "key": ex["key"], "position": tf.fill(tf.shape(label), tf.constant(-1, tf.int64)),
                     "flip": (r % 2 == 0) if flip else tf.zeros_like(r, tf.bool)}
        if dim:
            chunk["teacher"] = ex["teacher"]
            if has_flip:
                chunk["teacher_flip"] = ex["teacher_flip"]
        return chunk

    ds = ds.batch(read_chunk).map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds, dim, has_flip, num_classes
