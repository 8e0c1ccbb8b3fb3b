"""MarginHead against the float64 reference: logits, gradients, edge cases, precision, saving."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from tests import reference as ref
from tests.autodiff import value_and_grads
from tfmargin.heads import ArcFace, CosFace, MarginHead, SphereFace
from tfmargin.margins import apply_margin, margin_logits

pytestmark = pytest.mark.backends

MARGINS = {"arcface": (1.0, 0.5, 0.0), "cosface": (1.0, 0.0, 0.35), "sphereface": (4.0, 0.0, 0.0),
           "combined": (1.2, 0.3, 0.1)}


def _head(num_classes, centers, m, scale=64.0):
    head = MarginHead(num_classes, scale=scale, m1=m[0], m2=m[1], m3=m[2])
    head.build([(None, centers.shape[0]), (None,)])
    head.assign_centers(centers)
    return head


def _at_angle(center, theta, rng):
    """A vector at angle theta from `center`."""
    c = ref.unit(center)
    v = rng.normal(size=c.shape)
    v = ref.unit(v - (v @ c) * c)
    return (math.cos(theta) * c + math.sin(theta) * v) * 3.0


@pytest.mark.parametrize("kind", sorted(MARGINS))
def test_logits_match_reference_on_random_inputs(kind, rng):
    emb = rng.normal(size=(16, 8)).astype("float32")
    centers = rng.normal(size=(8, 11)).astype("float32")
    labels = rng.integers(0, 11, 16)
    out = ops.convert_to_numpy(_head(11, centers, MARGINS[kind])([emb, labels]))
    assert out.dtype == np.float32 and out.shape == (16, 11)
    np.testing.assert_allclose(out, ref.margin_logits(emb, centers, labels, 64.0, *MARGINS[kind]),
                               atol=2e-3)


@pytest.mark.parametrize("theta", [0.0, 1e-4, 0.3, math.pi / 2, math.pi - 0.6, math.pi - 0.2,
                                   math.pi - 1e-4, math.pi])
def test_edge_angles_arcface(theta, rng):
    """theta near 0 and near pi, and theta + m past pi where cos(theta + m) would turn back up."""
    centers = rng.normal(size=(8, 3)).astype("float32")
    emb = np.stack([_at_angle(centers[:, 1], theta, rng)]).astype("float32")  # a batch of one
    labels = np.array([1])
    out = ops.convert_to_numpy(_head(3, centers, MARGINS["arcface"])([emb, labels]))
    expect = ref.margin_logits(emb, centers, labels, 64.0, 1.0, 0.5, 0.0)
    assert np.all(np.isfinite(out))
    # float32 cosines near +-1 carry ~1e-4 rad of angle error, i.e. ~64 * 0.5 * 1e-4 in logits.
    np.testing.assert_allclose(out, expect, atol=0.05)


def test_target_logit_keeps_decreasing_past_pi(rng):
    """Past theta + m = pi the target logit must still fall as theta grows (no reward for
    moving away from the center), and be continuous across the boundary."""
    thetas = np.linspace(0.0, math.pi, 400)
    cos = np.cos(thetas).astype("float32")[:, None]
    labels = np.zeros(len(thetas), "int32")
    for m in MARGINS.values():
        target = ops.convert_to_numpy(apply_margin(ops.convert_to_tensor(cos), labels, 1.0, *m))[:, 0]
        inner = (thetas > 1e-3) & (thetas < math.pi - 1e-3)  # the clamp flattens the very ends
        assert np.all(np.diff(target[inner]) < 0), m
        assert np.max(np.abs(np.diff(target))) < 0.2, m  # no jump


def _ce_of_head(m, labels):
    def f(emb, centers):
        logits = margin_logits(emb, centers, ops.convert_to_tensor(labels, "int32"), 64.0, *m)
        return ops.mean(ops.sparse_categorical_crossentropy(
            ops.convert_to_tensor(labels, "int32"), logits, from_logits=True))
    return f


@pytest.mark.parametrize("kind", sorted(MARGINS))
def test_gradients_match_float64_finite_differences(kind, rng):
    emb = rng.normal(size=(4, 6))
    centers = rng.normal(size=(6, 5))
    labels = np.array([0, 3, 3, 1])
    m = MARGINS[kind]
    value, (g_emb, g_centers) = value_and_grads(_ce_of_head(m, labels), emb, centers)

    def ref_loss_emb(e):
        return ref.cross_entropy(ref.margin_logits(e, centers, labels, 64.0, *m), labels)

    def ref_loss_centers(w):
        return ref.cross_entropy(ref.margin_logits(emb, w, labels, 64.0, *m), labels)

    assert value == pytest.approx(ref_loss_emb(emb), rel=1e-4, abs=1e-4)
    np.testing.assert_allclose(g_emb, ref.numeric_grad(ref_loss_emb, emb), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(g_centers, ref.numeric_grad(ref_loss_centers, centers), rtol=2e-3,
                               atol=2e-3)


@pytest.mark.parametrize("theta", [0.05, math.pi - 0.3, math.pi - 0.05])
def test_gradients_at_edge_angles(theta, rng):
    """Near 0 the margin's gradient is steep, past pi - m the psi branch takes over."""
    centers = rng.normal(size=(6, 3))
    emb = np.stack([_at_angle(centers[:, 2], theta, rng), rng.normal(size=6)])
    labels = np.array([2, 0])
    m = MARGINS["arcface"]
    _, (g_emb, _) = value_and_grads(_ce_of_head(m, labels), emb, centers)

    def ref_loss(e):
        return ref.cross_entropy(ref.margin_logits(e, centers, labels, 64.0, *m), labels)

    assert np.all(np.isfinite(g_emb))
    np.testing.assert_allclose(g_emb, ref.numeric_grad(ref_loss, emb), rtol=1e-2, atol=1e-2)


def test_named_constructors():
    assert (ArcFace(5).m2, CosFace(5).m3, SphereFace(5).m1) == (0.5, 0.35, 4.0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_computes_in_float32_under_mixed_precision(policy, rng):
    keras.mixed_precision.set_global_policy(policy)
    try:
        inp = keras.Input((8,))
        labels = keras.Input((), dtype="int32")
        emb = keras.layers.Dense(8)(inp)
        head = MarginHead(7)
        model = keras.Model([inp, labels], head([emb, labels]))
        model.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = (rng.normal(size=(32, 8)) * 100).astype("float32")
        y = rng.integers(0, 7, 32).astype("int32")
        out = model.predict([x, y], verbose=0)
        assert head.compute_dtype == "float32" and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and np.abs(out).max() <= 64.0 * 1.0001
        history = model.fit([x, y], y, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][-1])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_keras_round_trip(tmp_path, rng):
    inp = keras.Input((8,))
    labels = keras.Input((), dtype="int32")
    model = keras.Model([inp, labels], CosFace(9, scale=30.0)([keras.layers.Dense(8)(inp), labels]))
    x = [rng.normal(size=(5, 8)).astype("float32"), rng.integers(0, 9, 5).astype("int32")]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    head = loaded.layers[-1]
    assert isinstance(head, MarginHead) and (head.scale, head.m3) == (30.0, 0.35)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
