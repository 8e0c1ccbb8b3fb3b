"""Partial FC's class sampling (An et al., "Killing Two Birds with One Stone", CVPR 2022), as
functions of the labels: which centers a step computes logits for, and where each row's target
lands among them. The layers that hold the centers (tfmargin.heads.partial_fc) call these.

Every class present in the batch is kept (it is some row's target and every other row's
negative); the rest of the `num_sampled` columns are drawn uniformly from the other classes.
With `shards` > 1 the classes are split into `shards` contiguous blocks (as a class-sharded
center matrix lies over devices) and each block contributes num_sampled / shards columns drawn
from its own classes, so each device gathers only its own centers.
"""

import math

import keras
from keras import ops

# Where a row's own target is repeated among the sampled negatives it is pushed out of the
# softmax with this logit; finite so that no inf - inf reaches a gradient.
MASKED_LOGIT = -1e9


def per_shard(num_classes, sample_rate, shards=1, batch=None):
    """Columns each block contributes: sample_rate of its classes and at least the batch size,
    so that every class of a batch fits, at most the whole block. `batch` is a Python int when
    the batch size is known while tracing (always under JAX), else a scalar tensor (TensorFlow
    fed a batch of unknown size): then so is the result."""
    block = num_classes // shards
    k = max(1, min(math.ceil(sample_rate * block), block))
    if batch is None or isinstance(batch, int):
        return k if batch is None else max(1, min(max(k, int(batch)), block))
    return ops.minimum(ops.maximum(k, ops.cast(batch, "int32")), block)


def sample_classes(labels, num_classes, num_sampled, seed=None, shards=1):
    """(index, local): `index` (num_sampled,) int32, the sampled classes in increasing order;
    `local` (B,) int32, the position of each row's label in `index`.

    num_sampled must be a multiple of `shards`, num_classes too; every label is in `index` as
    long as no block holds more distinct labels than num_sampled / shards."""
    if num_classes % shards or (isinstance(num_sampled, int) and num_sampled % shards):
        raise ValueError(f"sample_classes: {num_classes} classes and {num_sampled} samples must "
                         f"both split into {shards} shards")
    block, per = num_classes // shards, num_sampled // shards
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    scores = keras.random.uniform((num_classes,), seed=seed)  # in [0, 1)
    present = ops.scatter(labels[:, None], ops.ones_like(labels, dtype="float32"),
                          (num_classes,))
    scores = ops.where(present > 0, 2.0, scores)  # positives outrank every draw
    _, top = ops.top_k(ops.reshape(scores, (shards, block)), per, sorted=False)
    offsets = ops.arange(shards, dtype="int32")[:, None] * block
    index = ops.sort(ops.reshape(ops.cast(top, "int32") + offsets, (-1,)))
    position = ops.scatter(index[:, None], ops.arange(num_sampled, dtype="int32"),
                           (num_classes,))
    return index, ops.take(position, labels)


def target_first(logits, columns):
    """(B, K) logits whose row i has its target at `columns[i]` -> (B, 1 + K): the target in
    column 0, the K others after it with the target's own copy masked out. Cross-entropy with
    label 0 on these equals cross-entropy with `columns` on `logits`; the label-free form is
    what lets a sampled head keep Keras' (y_true, y_pred) loss contract."""
    target = ops.take_along_axis(logits, columns[:, None], axis=1)
    own = ops.one_hot(columns, ops.shape(logits)[1], dtype="bool")
    return ops.concatenate([target, ops.where(own, MASKED_LOGIT, logits)], axis=1)
