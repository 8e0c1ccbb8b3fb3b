"""Margins: functions of the cosines (B, C) and the labels, kept apart from the layers that hold
the class centers (as insightface's arcface_torch keeps `CombinedMarginLoss` apart from its FC),
so that warm-ups, center sampling and new center-based methods compose with any margin.

    CombinedMargin(m1, m2, m3)   ArcFace (m2), CosFace (m3), SphereFace (m1): fixed margins
    teacher_margins(...)          MarginDistillation's per-sample m_i from the teacher's cosines
"""

import math

from keras import ops

from tfmargin.margins.cosine import COS_EPS, cosine_logits, target_cosines


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


def teacher_margins(cos_t, m_max, m_min, d_max="batch", clip=False, floor=1e-6):
    """MarginDistillation's per-sample margins (Svitov & Alyamkin 2020) from cos_t (B,), the
    cosine between each teacher embedding and its own class center:

        m_i = (m_max - m_min) / D_max * cos_t_i + m_min

    D_max is the batch's largest cos_t ("batch", the paper) or a fixed positive number, floored
    at `floor` so that a batch of non-positive cosines gives very negative margins, not NaN.
    `clip` clips to [m_min, m_max] (the paper does not). No gradient flows through m_i."""
    if d_max == "batch":
        d_max = ops.maximum(ops.max(cos_t), floor)
    m = (m_max - m_min) / d_max * cos_t + m_min
    if clip:
        m = ops.clip(m, m_min, m_max)
    return ops.stop_gradient(m)


class CombinedMargin:
    """insightface's combined margin `cos(m1*theta + m2) - m3` at each row's target class, as a
    function of the cosines and labels. `fraction` in [0, 1] scales the margin towards none
    (1, 0, 0): what warm-ups and ramps use. `m2` may be a (B,) tensor of per-sample margins."""

    def __init__(self, m1=1.0, m2=0.0, m3=0.0):
        self.m1, self.m2, self.m3 = m1, m2, m3

    def __call__(self, cos, labels, scale, fraction=1.0):
        f = fraction
        return apply_margin(cos, labels, scale, 1.0 + (self.m1 - 1.0) * f, self.m2 * f,
                            self.m3 * f)
