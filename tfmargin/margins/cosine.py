"""Cosines between embeddings and class centers, written with keras.ops (TF and JAX): the
part every center-holding head shares before any margin is applied."""

from keras import ops

# Cosines are clamped this far inside [-1, 1] before acos: acos' derivative is infinite at the
# ends, and float32 dot products of unit vectors can land just outside the interval.
COS_EPS = 1e-7
NORM_EPS = 1e-12


def l2_normalize(x, axis=-1):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), NORM_EPS))


def cosine_logits(embeddings, centers):
    """(B, D) x (D, C) -> (B, C) cosines between normalised embeddings and normalised centers."""
    return ops.matmul(l2_normalize(embeddings, axis=1), l2_normalize(centers, axis=0))


def cosine_to_rows(embeddings, rows):
    """(B, D) x (C, D) -> (B, C): `cosine_logits` against centers held one row per class."""
    return ops.einsum("bd,cd->bc", l2_normalize(embeddings, axis=1), l2_normalize(rows, axis=1))


def row_cosine(a, b):
    """Cosine between matching rows of a and b: (B, D), (B, D) -> (B,)."""
    return ops.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def flat_labels(labels):
    return ops.cast(ops.reshape(labels, (-1,)), "int32")


def target_cosines(cos, labels):
    """cos[i, labels[i]] for each row: (B, C), (B,) -> (B,)."""
    return ops.take_along_axis(cos, labels[:, None], axis=1)[:, 0]
