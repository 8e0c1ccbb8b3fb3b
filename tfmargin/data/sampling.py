"""Identity-balanced batches: P identities x K images each, what triplet losses with
semi-hard mining need (a random batch of 512 from 85k identities holds almost no positives).

Built over any `train_dataset` stream without random access: the source is read in its own
order (insightface .rec files and shards written from them keep an identity's images together)
in windows of W images; inside a window the images of each identity, in a random order, are cut
into groups of K (an identity's remainder < K waits for no one: it is dropped for this pass);
groups from many windows are shuffled in a buffer and P of them make a batch of P*K. With a
source in a random order, windows must be large for identities to repeat inside one.
"""

import tensorflow as tf


def window_groups(features, label, k, seed):
    """One window (features dict of (W, ...), labels (W,)) -> dict of (G, K, ...) groups, each
    group K images of one identity. `seed`: a (2,) int64 stateless seed."""
    n = tf.shape(label)[0]
    perm = tf.random.experimental.stateless_shuffle(tf.range(n), seed=seed)
    order = tf.gather(perm, tf.argsort(tf.gather(label, perm), stable=True))
    sorted_labels = tf.gather(label, order)
    start = tf.concat([[True], sorted_labels[1:] != sorted_labels[:-1]], axis=0)
    segment = tf.cumsum(tf.cast(start, tf.int32)) - 1
    positions = tf.range(n)
    first = tf.math.segment_min(positions, segment)
    count = tf.math.segment_sum(tf.ones_like(positions), segment)
    rank = positions - tf.gather(first, segment)
    keep = rank < tf.gather(count // k * k, segment)
    picked = tf.reshape(tf.boolean_mask(order, keep), [-1, k])
    return {name: tf.gather(value, picked) for name, value in features.items()}


def identity_batches(windows, identities_per_batch, images_per_identity, *, seed=0,
                     group_buffer=1024):
    """(features, label) batches of P*K images (P = identities_per_batch, K =
    images_per_identity; images i*K .. i*K+K-1 share an identity) from a stream of windows
    `(features dict, label)` such as `train_dataset(source, W, shuffle=False, repeat=True)`.
    Groups are shuffled in a buffer of `group_buffer` groups. An endless window stream gives
    an endless batch stream."""
    k, p = int(images_per_identity), int(identities_per_batch)
    if k < 1 or p < 1:
        raise ValueError(f"identity batches need P, K >= 1, got P={p}, K={k}")

    def groups(i, batch):
        features, label = batch
        return tf.data.Dataset.from_tensor_slices(
            window_groups(features, label, k, tf.stack([tf.constant(seed, tf.int64), i])))

    ds = windows.enumerate().flat_map(groups)
    ds = ds.shuffle(group_buffer, seed=seed).batch(p, drop_remainder=True)

    def flatten(group):
        out = {name: tf.reshape(v, [p * k, *v.shape[2:]]) for name, v in group.items()}
        return out, out["label"]

    return ds.map(flatten, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
