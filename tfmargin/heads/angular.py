"""Angular arithmetic shared by every margin head, written with keras.ops (TF and JAX)."""

import math

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


def row_cosine(a, b):
    """Cosine between matching rows of a and b: (B, D), (B, D) -> (B,)."""
    return ops.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def flat_labels(labels):
    return ops.cast(ops.reshape(labels, (-1,)), "int32")


def target_cosines(cos, labels):
    """cos[i, labels[i]] for each row: (B, C), (B,) -> (B,)."""
    return ops.take_along_axis(cos, labels[:, None], axis=1)[:, 0]


def margin_target(cos_target, m1=1.0, m2=0.0, m3=0.0):
    """Combined-margin target `cos(m1*theta + m2) - m3`, kept monotone past pi.

    Once phi = m1*theta + m2 leaves [0, pi], cos(phi) would rise again and reward moving away
    from the center. SphereFace's psi(phi) = (-1)^k cos(phi) - 2k with k = floor(phi / pi)
    extends it as a continuous function that keeps decreasing in theta; inside [0, pi] (k = 0)
    it is exactly cos(phi). `m2` may be a tensor of per-sample margins.
    """
    theta = ops.arccos(ops.clip(cos_target, -1.0 + COS_EPS, 1.0 - COS_EPS))
    phi = m1 * theta + m2
    k = ops.stop_gradient(ops.floor(phi / math.pi))
    sign = 1.0 - 2.0 * (k - 2.0 * ops.floor(k / 2.0))  # (-1)^k, also for negative k
    return sign * ops.cos(phi) - 2.0 * k - m3


def replace_target(cos, labels, target):
    """Put target[i] at cos[i, labels[i]], leave every other entry."""
    is_target = ops.one_hot(labels, ops.shape(cos)[1], dtype="bool")
    return ops.where(is_target, target[:, None], cos)


def margin_logits(embeddings, centers, labels, scale, m1=1.0, m2=0.0, m3=0.0):
    """Scaled cosine logits with the combined margin at each row's target class.

    (B, D), (D, C), (B,) int -> (B, C). `m2` may be a (B,) tensor of per-sample margins."""
    return apply_margin(cosine_logits(embeddings, centers), labels, scale, m1, m2, m3)


def apply_margin(cos, labels, scale, m1=1.0, m2=0.0, m3=0.0):
    """`margin_logits` from already computed cosines (B, C)."""
    target = margin_target(target_cosines(cos, labels), m1, m2, m3)
    return scale * replace_target(cos, labels, target)


def adacos_scale(num_classes):
    """AdaCos' fixed scale sqrt(2) * ln(C - 1) (Zhang et al., CVPR 2019): large enough that a
    sample at its center is classified confidently, small enough that the softmax does not
    saturate while samples are still far from it. 7.6 for 210 classes, 16.1 for MS1M's 85,742
    (the paper's s=64 is for the latter)."""
    return math.sqrt(2.0) * math.log(max(int(num_classes) - 1, 2))
