"""Fine-tuning the fake-quantised backbone through the student's own head."""

import os

import numpy as np

from tfmargin.export.model import ExportError
from tfmargin.export.qat.tf_keras import tf_modules

def _array_batches(data, batch_size, seed):
    images, labels, *rest = data
    teacher = rest[0] if rest else None
    rng = np.random.default_rng(seed)
    n = len(labels)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = np.sort(order[start:start + batch_size])
            yield ({"image": images[idx], "label": labels[idx],
                    **({"teacher": teacher[idx]} if teacher is not None else {})}, labels[idx])


def _cycle(iterable):
    while True:
        empty = True
        for item in iterable:
            empty = False
            yield item
        if empty:
            raise ExportError("QAT: the training data yielded no batches")


def training_batches(data, batch_size=64, teacher=None, seed=0):
    """Endless (image float32 [-1, 1], label int32, teacher float32 or None) batches from:
    a training source path (read with tfmargin.data.train_dataset; `teacher` as that takes
    it: an array, a .npy path or "labels"), a tf.data.Dataset / iterable of
    ({"image", "label", "teacher"?}, label) batches, or a tuple of arrays
    (images, labels[, teacher embeddings])."""
    from tfmargin.export.representative import _as_float

    if isinstance(data, (str, os.PathLike)):
        from tfmargin.data import train_dataset

        where = os.fspath(data)
        if not os.path.exists(where):
            raise FileNotFoundError(f"QAT data {where} does not exist")
        try:
            data = train_dataset(where, batch_size, shuffle=True, seed=seed, repeat=True,
                                 teacher=teacher)  # None: the embeddings the source carries
        except ValueError as e:
            raise ExportError(f"QAT data {where}: {e}") from None
        source = iter(data)
    elif isinstance(data, tuple) and len(data) in (2, 3) and hasattr(data[0], "shape"):
        source = _array_batches(data, batch_size, seed)
    else:
        source = _cycle(data)
    for item in source:
        features, label = item if isinstance(item, tuple) else (item, item["label"])
        t = features.get("teacher") if isinstance(features, dict) else None
        images = features["image"] if isinstance(features, dict) else features
        yield (_as_float(np.asarray(images), "QAT data"),
               np.asarray(label, np.int32).reshape(-1),
               None if t is None else np.asarray(t, np.float32))


def fine_tune(qat, head, batches, steps, learning_rate=1e-3, momentum=0.9, log=None):
    """`steps` SGD steps of cross-entropy on `head`'s margin logits; returns the losses."""
    import tensorflow as tf
    tf_keras, _ = tf_modules()
    from tfmargin.heads import MarginDistillationHead, compile_loss

    if compile_loss(head) is None:
        raise ExportError(f"QAT: head {type(head).__name__} adds its own objective; QAT "
                          "fine-tunes margin heads (MarginHead, MarginDistillationHead)")
    distill = isinstance(head, MarginDistillationHead)
    optimizer = tf_keras.optimizers.SGD(learning_rate, momentum=momentum)

    @tf.function
    def step(images, labels, teacher):
        with tf.GradientTape() as tape:
            emb = qat(images, training=True)
            logits = head([emb, labels, teacher] if distill else [emb, labels])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, qat.trainable_variables)
        optimizer.apply_gradients(zip(grads, qat.trainable_variables))
        return loss

    losses = []
    for i in range(steps):
        images, labels, teacher = next(batches)
        if distill and teacher is None:
            raise ExportError("QAT: a MarginDistillation student needs teacher embeddings in "
                              "its training data (pass teacher=...)")
        if teacher is None:
            teacher = np.zeros((len(labels), 1), np.float32)
        losses.append(float(step(images, labels, teacher)))
        if not np.isfinite(losses[-1]):
            raise ExportError(f"QAT: the loss became {losses[-1]} at step {i + 1}; lower the "
                              "learning rate")
        if log and (i + 1) % max(1, steps // 10) == 0:
            log(f"QAT step {i + 1}/{steps}: loss {losses[-1]:.4f}")
    return losses
