"""The training stream a recipe asks for: tf.data batches from the training source (teachers,
the ArcFace control without a signal) or from the teacher signal's shards (students: the same
images, with features["teacher"]), identity-balanced for the triplet methods; or an ArrayFeed
from an .npz (Keras on JAX without TensorFlow).

Streams are endless (Keras epochs are `steps_per_epoch` steps). A resumed run starts at
`start_step`: with exact=True the batches already trained on are skipped (the stream is then
identical to an uninterrupted run's; tf.data pays one decode per skipped image), otherwise the
stream is reseeded from the step (no cost, different batches).
"""

import contextlib
import os

import numpy as np

from tfmargin.train.config import ConfigError

def is_npz(source):
    return os.fspath(source).endswith(".npz")


def signal_source(signal):
    """The directory of the signal's TFRecord shards and dataset.json (train_dataset's source)."""
    return signal.directory


def data_num_classes(source):
    """The class count a training source declares (labels are 0..n-1)."""
    source = os.fspath(source)
    if is_npz(source):
        with np.load(source, allow_pickle=False) as z:
            return int(z["label"].max()) + 1
    from tfmargin.data.sources import IndexedSource, source_kind
    from tfmargin.data.tfrecord import tfrecord_files

    if source_kind(source) == "tfrecord":
        _, meta = tfrecord_files(source)
        if meta is None or not meta.get("num_classes"):
            raise ConfigError(f"data: {source} has no dataset.json with num_classes; give "
                              "num_classes")
        return int(meta["num_classes"])
    return int(IndexedSource(source).num_classes)


def check_classes(config, signal):
    """The class count to train over; ConfigError when labels could reach past the centers."""
    data_classes = data_num_classes(config.data)
    if signal is not None and data_classes > signal.num_classes:
        raise ConfigError(f"teacher_signal: the data ({config.data}) has labels up to "
                          f"{data_classes - 1}, but the teacher's centers cover "
                          f"{signal.num_classes} classes ({signal.directory})")
    if config.num_classes and data_classes > config.num_classes:
        raise ConfigError(f"num_classes: {config.num_classes}, but the data ({config.data}) "
                          f"has labels up to {data_classes - 1}")
    if signal is not None and config.needs_teacher:
        return signal.num_classes
    return config.num_classes or data_classes


def training_data(config, signal=None, *, input_context=None, start_step=0, num_classes=None,
                  skip_per_step=1, stats=None):
    """The endless batch stream of a run. `input_context` (tf.distribute) shards it and sets
    the per-replica batch size; `skip_per_step` is how many of this pipeline's batches one
    global step consumes (replicas per input pipeline). `stats`: a PipelineStats the caller
    holds, which counts and names the corrupt images the stream skips."""
    seed = config.seed if config.exact_resume or not start_step else config.seed + start_step
    skip = start_step * skip_per_step if config.exact_resume else 0
    with_teacher = signal is not None and config.reads_teacher_embeddings
    if is_npz(config.data):
        from tfmargin.data.feed import ArrayFeed

        feed = ArrayFeed.from_npz(config.data, batch_size=config.batch_size, shuffle=True,
                                  flip=config.flip, seed=seed,
                                  images_per_identity=config.images_per_identity
                                  if config.triplet else 0,
                                  steps_per_epoch=config.steps_per_epoch, start_step=skip)
        if with_teacher and feed.teacher is None:
            raise ConfigError(f"data: {config.data} has no 'teacher' array; write it with "
                              "write_arrays from the teacher signal's shards")
        if not with_teacher:
            feed.teacher = feed.teacher_flip = None
            feed.flip = bool(config.flip)
        return feed

    with _without_global_tf_seed():
        ds = _tf_stream(config, signal, input_context, num_classes, seed, with_teacher, stats)
    return ds.skip(skip) if skip else ds


def _tf_stream(config, signal, input_context, num_classes, seed, with_teacher, stats=None):
    from tfmargin.data import train_dataset

    common = dict(image_size=config.image_size, flip=config.flip, seed=seed, repeat=True,
                  input_context=input_context, num_classes=num_classes,
                  teacher=None if with_teacher else False, stats=stats)
    if config.triplet:
        # P x K batches come from the identity index of the images' own source, with the
        # teacher's embeddings looked up by position (not from windows of the shuffled shards)
        from tfmargin.data.sources import source_kind
        from tfmargin.distill import teacher_by_position

        if source_kind(config.data) == "tfrecord":
            raise ConfigError(f"data: method {config.method} draws P x K batches from an "
                              f"identity index; give the .rec (with its .idx) or identity "
                              f"folders the teacher signal was made from, not {config.data}")
        if config.flip:
            raise ConfigError(f"flip: method {config.method} reads the teacher's embeddings "
                              "of the unflipped images; train it with --flip=false")
        teacher = teacher_by_position(signal, config.data) if with_teacher else False
        return train_dataset(config.data, config.batch_size, **{**common, "teacher": teacher},
                             images_per_identity=config.images_per_identity)
    source = signal_source(signal) if signal is not None else config.data
    return train_dataset(source, config.batch_size, shuffle=True,
                         shuffle_buffer=config.shuffle_buffer, **common)


@contextlib.contextmanager
def _without_global_tf_seed():
    """Build tf.data streams with TensorFlow's global seed unset, then put it back.

    train_dataset seeds its ops with tensors drawn per pass (explicit, so the global seed does
    not change the stream), but with a global seed set (keras.utils.set_random_seed) TF's
    get_seed tests those tensors as Python bools and tracing fails. Remove once pipeline.py
    handles it."""
    import tensorflow as tf

    previous = tf.compat.v1.random.get_seed(None)[0]  # the global seed, or None (public API)
    tf.random.set_seed(None)
    try:
        yield
    finally:
        if previous is not None:
            tf.random.set_seed(previous)
