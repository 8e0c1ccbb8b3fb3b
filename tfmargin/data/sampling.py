"""Identity-balanced order: P x K batches (K images of each of P identities), what triplet
losses need (a random batch of 512 from 85k identities holds almost no positives).

The order comes from an identity index (every position's label, from the .rec's index or the
folder listing), not from windows of a stream: each pass shuffles every identity's images,
cuts them into groups of K (an identity's remainder < K sits this pass out), shuffles the
groups and lays them end to end, so any run of P*K positions that starts at a group boundary
is a P x K batch. All of it is stateless in the pass seed: a pass is a function of (seed, pass).
"""

import numpy as np
import tensorflow as tf


def groups_per_pass(labels, k):
    """How many positions one pass keeps: sum over identities of (count // K) * K."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return int(np.sum(counts // k * k))


def identity_groups(positions, labels, k, seed):
    """`positions` (n,) int64 with their `labels` (n,) -> the positions of one pass in groups of
    K of one identity, the groups in random order (a 1-D tensor of groups_per_pass length).
    `seed`: a (2,) int64 stateless seed."""
    positions = tf.convert_to_tensor(positions, tf.int64)
    labels = tf.convert_to_tensor(labels, tf.int64)
    seed = tf.convert_to_tensor(seed, tf.int64)
    n = tf.shape(positions)[0]
    perm = tf.random.experimental.stateless_shuffle(tf.range(n), seed=seed)
    order = tf.gather(perm, tf.argsort(tf.gather(labels, perm), stable=True))
    sorted_labels = tf.gather(labels, order)
    start = tf.concat([[True], sorted_labels[1:] != sorted_labels[:-1]], axis=0)
    segment = tf.cumsum(tf.cast(start, tf.int32)) - 1
    index = tf.range(n)
    first = tf.math.segment_min(index, segment)
    count = tf.math.segment_sum(tf.ones_like(index), segment)
    rank = index - tf.gather(first, segment)
    keep = rank < tf.gather(count // k * k, segment)
    groups = tf.reshape(tf.boolean_mask(order, keep), [-1, k])
    groups = tf.random.experimental.stateless_shuffle(groups, seed=seed + [0, 7])
    return tf.gather(positions, tf.reshape(groups, [-1]))
