"""Decoding a chunk of encoded images so that only a corrupt image can be dropped, and the
[-1, 1] conversion of a batch."""

import tensorflow as tf

from tfmargin.data.image_header import declared_size, too_large
from tfmargin.data.images import decode_tensor, resize_tensor
from tfmargin.data.tfrecord import tfrecord_files


def normalize(images):
    """uint8 -> float32 (x - 127.5) / 127.5 in one pass: Dequantize's MIN_COMBINED mode computes
    min + x * (max - min) / 255 with min=-1, max=1, i.e. exactly that mapping."""
    return tf.quantization.dequantize(tf.bitcast(images, tf.quint8), -1.0, 1.0,
                                      mode="MIN_COMBINED")


def inline_map(ds, fn):
    """ds.map(fn) with fn run inline by the single-threaded executor: no hand-off to the
    inter-op thread pool per call, which costs more CPU than the map's own overhead for a
    one-op function like a JPEG decode. fn must be free of control flow (tf.cond, loops).
    Falls back to plain map where TensorFlow lacks the private constructor."""
    try:
        from tensorflow.python.data.ops.map_op import _MapDataset
        return _MapDataset(ds, fn, use_inter_op_parallelism=False, preserve_cardinality=True)
    except (ImportError, TypeError):  # other TensorFlow versions (tested by monkeypatch)
        return ds.map(fn)


def _collect(items, empty):
    """(index, image) of a nested per-image dataset whose failures were dropped: all of them
    in one tensor pair (one op, no per-image thread hand-offs); `empty` when none is left."""
    both = items.batch(1 << 30).concatenate(tf.data.Dataset.from_tensors(empty))
    return both.take(1).get_single_element()


def decoder(image_size, do_flip, swap_teacher, strict, where, stats, exact=True):
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

    def name_missing(chunk, index, size):
        # the records behind the dropped images, for the skipped-images log
        present = tf.scatter_nd(index[:, None], tf.ones_like(index), [size])
        missing = tf.where(tf.equal(present, 0))[:, 0]
        return tf.numpy_function(stats.note_skipped, [tf.gather(chunk["key"], missing),
                                                      tf.gather(chunk["position"], missing)],
                                 tf.int64, stateful=True)

    def decode_chunk(chunk):
        images, flips = chunk["image"], chunk["flip"]
        size = tf.shape(images, out_type=tf.int64)[0]
        positions = tf.range(size)
        if exact:
            fast = inline_map(items(positions, images, flips), decode_exact).ignore_errors()
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
            checks.append(tf.cond(tf.equal(k, size), lambda: tf.constant(0, tf.int64),
                                  lambda: name_missing(chunk, index, size)))
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


def sample_image(source, kind, src):
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


def sizes_match(encoded, image_size):
    """Whether a sample image of the source has the training size (picks the decode path)."""
    if not encoded:
        return True
    declared = declared_size(encoded)  # read from the header: a bomb is never decoded here
    if declared is not None:
        return tuple(declared) == (image_size, image_size)
    if too_large(encoded):
        return True
    try:
        shape = decode_tensor(tf.constant(encoded)).shape
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError):
        return True  # a corrupt sample says nothing; the exact path handles any size anyway
    return tuple(shape[:2]) == (image_size, image_size)
