"""train_dataset and verification_dataset: the pipelines users call."""

import logging
import os

import numpy as np
import tensorflow as tf

from tfmargin.data.images import decode_tensor, resize_tensor
from tfmargin.data.pipeline.chunks import AUTOTUNE, indexed_chunks, tfrecord_chunks
from tfmargin.data.pipeline.decode import decoder, normalize, sample_image, sizes_match
from tfmargin.data.pipeline.errors import DataPipelineError
from tfmargin.data.pipeline.stats import PipelineStats
from tfmargin.data.sources import IndexedSource, load_array, source_kind
from tfmargin.data.tfrecord import tfrecord_files

log = logging.getLogger("tfmargin.data.pipeline")


def train_dataset(source, batch_size, *, image_size=112, shuffle=True, shuffle_buffer=10_000,
                  flip=False, teacher=None, teacher_flip=None, seed=None, deterministic=None,
                  drop_remainder=True, input_context=None, num_shards=1, shard_index=0,
                  strict=False, num_classes=None, label_index=0, repeat=False, read_chunk=None,
                  prefetch=AUTOTUNE, stats=None, images_per_identity=0):
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
    images_per_identity: K > 0 gives P x K batches (P = batch_size / K identities, K images
        each, images i*K .. i*K+K-1 of one identity) drawn from the identity index of a .rec /
        folder source (tfmargin.data.sampling); an epoch is then every identity's images in
        groups of K. A corrupt image that is skipped shifts every later group by one place, so
        from there on each batch starts and ends with a split group (those images lose some of
        their positives; the triplet losses use only pairs that share a label).

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

    if images_per_identity and (kind == "tfrecord" or batch_size % images_per_identity):
        raise ValueError(f"{where}: P x K batches need an indexed source (.rec with its .idx, or "
                         "identity folders; TFRecord shards are streamed) and a batch size "
                         f"divisible by K={images_per_identity}")
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
            elif meta.get("num_examples") is not None:  # fewer files than shards: by record
                num_examples = len(range(shard_index, int(meta["num_examples"]), num_shards))
    else:
        src = IndexedSource(source, label_index=label_index, num_classes=num_classes)
        num_classes = src.num_classes
        where = src.path  # the .rec itself: errors about its records name the file
        positions = np.arange(len(src), dtype=np.int64)[shard_index::num_shards]
        num_examples = len(positions)
        if images_per_identity:
            from tfmargin.data.sampling import groups_per_pass

            num_examples = groups_per_pass(np.asarray(src.labels())[positions],
                                           images_per_identity)
        if num_examples == 0:
            raise DataPipelineError(f"{where}: shard {shard_index} of {num_shards} is empty"
                             + (f" (no identity has {images_per_identity} images)"
                                if images_per_identity else ""))

    # With drop_remainder and a known size, an epoch is exactly num_examples // batch_size
    # batches, cut from an endless stream: the cardinality is known (Keras shows progress, step
    # schedules line up) and skipped corrupt images are replaced by the next permutation's.
    fixed_epoch = drop_remainder and not repeat and num_examples is not None
    if fixed_epoch and num_examples < batch_size:
        raise DataPipelineError(f"{where}: {num_examples} images, fewer than one batch of "
                                f"{batch_size}")
    endless = repeat or fixed_epoch

    if kind == "tfrecord":
        chunks, dim, has_flip, num_classes = tfrecord_chunks(
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
        chunks, dim = indexed_chunks(
            src, positions, shuffle=shuffle, flip=flip, seed=seed, repeat=endless,
            read_chunk=read_chunk, teacher=teacher_arr, teacher_flip=teacher_flip_arr,
            teacher_from_labels=from_labels, deterministic=deterministic, strict=strict,
            images_per_identity=images_per_identity)
        has_flip = teacher_flip_arr is not None

    exact = sizes_match(sample_image(source, kind, src if kind != "tfrecord" else None),
                         image_size)
    do_flip = bool(flip)
    if flip and dim and not has_flip:
        log.warning("%s: flip turned off: the teacher embeddings have no flipped counterpart "
                    "(teacher_flip), and flipping would break them", where)
        do_flip = False
    stats.where = where
    if kind != "tfrecord":
        stats.namer = src.key
    if endless:
        stats.give_up_after = max(num_examples or 0, 10 * read_chunk) + batch_size
    decode_chunk = decoder(image_size, do_flip, do_flip and bool(dim), strict, where, stats,
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
