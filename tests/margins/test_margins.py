"""tfmargin.margins against float64 numpy restatements (TF and JAX)."""

import math

import keras
import numpy as np
import pytest

from tfmargin.margins import CombinedMargin, teacher_margins

pytestmark = pytest.mark.backends


def np_(x):
    return keras.ops.convert_to_numpy(x).astype(np.float64)


def reference_logits(cos, labels, scale, m1, m2, m3):
    """insightface's combined margin in float64, inside [0, pi] (where the tests stay)."""
    out = cos.astype(np.float64).copy()
    rows = np.arange(len(labels))
    theta = np.arccos(np.clip(out[rows, labels], -1 + 1e-7, 1 - 1e-7))
    out[rows, labels] = np.cos(m1 * theta + m2) - m3
    return scale * out


@pytest.mark.parametrize("m1, m2, m3", [(1.0, 0.5, 0.0), (1.0, 0.0, 0.35), (1.5, 0.2, 0.1)])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_combined_margin_and_its_fraction(rng, m1, m2, m3, fraction):
    cos = rng.uniform(0.2, 0.9, (6, 5)).astype(np.float32)  # theta * m1 + m2 stays below pi
    labels = np.array([0, 1, 2, 3, 4, 0], np.int32)
    got = np_(CombinedMargin(m1, m2, m3)(cos, labels, 16.0, fraction))
    f = fraction
    want = reference_logits(cos, labels, 16.0, 1 + (m1 - 1) * f, m2 * f, m3 * f)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
    if fraction == 0.0:
        np.testing.assert_allclose(got, 16.0 * cos, rtol=1e-6)


@pytest.mark.parametrize("d_max, clip", [("batch", False), ("batch", True), (0.8, False)])
def test_teacher_margins(rng, d_max, clip):
    cos_t = rng.uniform(-0.3, 0.95, 32).astype(np.float32)
    got = np_(teacher_margins(cos_t, 0.5, 0.2, d_max, clip))
    d = cos_t.astype(np.float64).max() if d_max == "batch" else d_max
    want = (0.5 - 0.2) / d * cos_t.astype(np.float64) + 0.2
    if clip:
        want = np.clip(want, 0.2, 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if d_max == "batch" and not clip:
        assert math.isclose(got.max(), 0.5, rel_tol=1e-6)  # the batch's most confident sample


def test_teacher_margins_of_a_broken_teacher_are_finite():
    cos_t = np.array([-0.5, -0.1, 0.0], np.float32)  # no positive cosine in the batch
    got = np_(teacher_margins(cos_t, 0.5, 0.2, "batch", floor=1e-6))
    np.testing.assert_allclose(got, 0.3 / 1e-6 * cos_t.astype(np.float64) + 0.2, rtol=1e-5)
    assert np.isfinite(got).all()
