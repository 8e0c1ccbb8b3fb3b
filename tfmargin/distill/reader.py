"""Reading the training images in order for the teacher, and naming a record that breaks."""

import numpy as np

from tfmargin.distill.format import TeacherSignalError


def open_source(source):
    from tfmargin.data.sources import IndexedSource

    try:
        return IndexedSource(source)
    except (ValueError, OSError) as e:
        raise TeacherSignalError(str(e).splitlines()[0]) from None


def check_labels(src, num_classes):
    try:
        labels = np.asarray(src.labels(), np.int64)
    except (ValueError, OSError) as e:  # LabelError / RecordIOError name the record already
        raise TeacherSignalError(str(e).splitlines()[0]) from None
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise TeacherSignalError(f"{src.path}: record {src.key(i)} has label {labels[i]}, outside "
                                 f"the teacher's classes 0..{num_classes - 1}")
    return labels


def image_batches(src, order, batch_size, image_size, flip):
    """tf.data batches (encoded bytes (b,), labels (b,), x) of the images at positions `order`:
    x float32 normalised images, the flipped copies appended when flip (2b rows); read and
    decoded in parallel, delivered in order."""
    import tensorflow as tf

    from tfmargin.data.images import decode_tensor, resize_tensor
    from tfmargin.data.pipeline import normalize

    n = len(order)

    def read(start):
        pairs = src.read_many(order[start:start + batch_size])
        data = np.empty(len(pairs), object)
        data[:] = [p[0] for p in pairs]
        return data, np.asarray([p[1] for p in pairs], np.int64)

    def read_op(start):
        data, labels = tf.numpy_function(read, [start], [tf.string, tf.int64])
        data.set_shape([None])
        labels.set_shape([None])
        return data, labels

    def decode(data, labels):
        images = tf.map_fn(lambda d: resize_tensor(decode_tensor(d), image_size), data,
                           fn_output_signature=tf.TensorSpec([image_size, image_size, 3],
                                                             tf.uint8))
        x = normalize(images)
        if flip:
            x = tf.concat([x, tf.reverse(x, [2])], 0)
        return data, labels, x

    ds = tf.data.Dataset.range(0, n, batch_size)
    ds = ds.map(read_op, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2)


def diagnose(src, positions, error):
    """The record that broke a batch, as a TeacherSignalError naming it."""
    from tfmargin.data.images import decode_image

    for i in positions:
        i = int(i)
        try:
            data, _, _ = src.read(i)
            decode_image(data, f"{src.path}: record {src.key(i)}")
        except (ValueError, OSError) as e:
            return TeacherSignalError(str(e).splitlines()[0])
    first = (getattr(error, "message", "") or str(error)).strip().splitlines()
    return TeacherSignalError(f"{src.path}: reading records {src.key(int(positions[0]))}.."
                              f"{src.key(int(positions[-1]))}: "
                              f"{first[0] if first else type(error).__name__}")
