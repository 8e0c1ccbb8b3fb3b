"""Softmax warm-up: margin-free logits for the first N training steps, the head's margin
logits from step N on, checked against a float64 numpy reference."""

import keras
import pytest
import numpy as np

from tests.train.fixtures import signal, tiny_config  # noqa: F401  (shared fixtures)
from tfmargin.heads import ArcFace
from tfmargin.train import SoftmaxWarmup


def _reference(emb, centers, labels, scale, margin):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    c = centers / np.linalg.norm(centers, axis=0, keepdims=True)
    cos = e @ c
    plain = scale * cos
    with_margin = plain.copy()
    rows = np.arange(len(labels))
    with_margin[rows, labels] = scale * np.cos(np.arccos(cos[rows, labels]) + margin)
    return plain, with_margin


@pytest.mark.backends
def test_margin_switches_on_at_the_warmup_step(rng):
    emb = rng.normal(size=(6, 8)).astype(np.float32)
    labels = rng.integers(0, 5, 6).astype(np.int32)
    head = SoftmaxWarmup(ArcFace(5, scale=16.0, margin=0.5), warmup_steps=3)
    head([emb, labels])
    centers = keras.ops.convert_to_numpy(head.head.centers).astype(np.float64)
    plain, with_margin = _reference(emb.astype(np.float64), centers, labels, 16.0, 0.5)
    assert not np.allclose(plain, with_margin)
    for step in range(5):
        # Each training call counts one step; the logits of call k are computed before it.
        out = keras.ops.convert_to_numpy(head([emb, labels], training=True))
        np.testing.assert_allclose(out, with_margin if step >= 3 else plain, rtol=1e-5,
                                   atol=1e-4)
        assert int(keras.ops.convert_to_numpy(head.step)) == step + 1
    # Inference calls do not count.
    head([emb, labels])
    assert int(keras.ops.convert_to_numpy(head.step)) == 5


def test_fit_counts_steps_and_round_trips(rng, tmp_path, tiny_config, signal):
    from tfmargin.train import build_student, training_data

    config = tiny_config.replace(method="margin_distillation", softmax_warmup_steps=4)
    built = build_student(config, signal)
    assert isinstance(built.head, SoftmaxWarmup)
    built.model.fit(training_data(config, signal), steps_per_epoch=3, epochs=2, verbose=0)
    assert int(keras.ops.convert_to_numpy(built.head.step)) == 6
    path = tmp_path / "classifier.keras"
    built.model.save(path)
    again = keras.saving.load_model(path)
    head = again.get_layer("softmax_warmup")
    assert head.warmup_steps == 4 and int(keras.ops.convert_to_numpy(head.step)) == 6
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(head.head.centers), signal.centers)


@pytest.mark.backends
def test_margin_ramps_up_linearly_after_the_warmup(rng):
    """Steps 0..1 plain; then the margin is k/3 of 0.5 at the k-th step after the warm-up."""
    emb = rng.normal(size=(6, 8)).astype(np.float32)
    labels = rng.integers(0, 5, 6).astype(np.int32)
    head = SoftmaxWarmup(ArcFace(5, scale=16.0, margin=0.5), warmup_steps=2, ramp_steps=3)
    head([emb, labels])
    centers = keras.ops.convert_to_numpy(head.head.centers).astype(np.float64)
    fractions = [0, 0, 1 / 3, 2 / 3, 1, 1, 1]
    for step, f in enumerate(fractions):
        _, want = _reference(emb.astype(np.float64), centers, labels, 16.0, 0.5 * f)
        out = keras.ops.convert_to_numpy(head([emb, labels], training=True))
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4, err_msg=f"step {step}")


def test_margin_distillation_margins_ramp_too(rng, signal):
    """The per-sample margins of a MarginDistillation head are scaled by the same fraction."""
    from tfmargin.heads import MarginDistillationHead

    centers = signal.centers
    d, c = centers.shape
    emb = rng.normal(size=(6, d)).astype(np.float32)
    teacher = rng.normal(size=(6, d)).astype(np.float32)
    labels = rng.integers(0, c, 6).astype(np.int32)
    inner = MarginDistillationHead(centers, scale=32.0)
    head = SoftmaxWarmup(inner, warmup_steps=1, ramp_steps=2)
    head([emb, labels, teacher])
    m = keras.ops.convert_to_numpy(inner.margins(teacher, labels)).astype(np.float64)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = e.astype(np.float64) @ (centers / np.linalg.norm(centers, axis=0, keepdims=True))
    rows = np.arange(6)
    for step, f in enumerate([0, 0.5, 1, 1]):
        want = 32.0 * cos.copy()
        want[rows, labels] = 32.0 * np.cos(np.arccos(cos[rows, labels]) + f * m)
        out = keras.ops.convert_to_numpy(head([emb, labels, teacher], training=True))
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=2e-4, err_msg=f"step {step}")


def test_the_angular_term_stays_on_during_the_warmup(rng):
    """AngularDistillationHead adds alpha * mean(1 - cos(s, t)) in logits_from_cosines: the
    wrapper, which calls that and never the head's call, keeps it from the first step."""
    from tfmargin.heads import AngularDistillationHead

    emb = rng.normal(size=(5, 8)).astype(np.float32)
    teacher = rng.normal(size=(5, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1], np.int32)
    head = SoftmaxWarmup(AngularDistillationHead(3, scale=8.0, alpha=0.7), warmup_steps=10)
    inputs = keras.Input((8,)), keras.Input((), dtype="int32"), keras.Input((8,))
    model = keras.Model(inputs, head(list(inputs)))
    model([emb, labels, teacher])
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    t = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    want = 0.7 * np.mean(1.0 - np.sum(e.astype(np.float64) * t, axis=1))
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(model.losses[0])), want,
                               rtol=1e-5)


def test_the_centers_product_is_computed_once(rng, monkeypatch):
    """The wrapper hands the head its cosines: one (B x D x C) product per call, not two."""
    from tfmargin import margins

    calls = []
    real = margins.cosine_to_rows

    def counting(*args):
        calls.append(1)
        return real(*args)

    head = SoftmaxWarmup(ArcFace(5, scale=16.0), warmup_steps=1, ramp_steps=2)
    emb = rng.normal(size=(4, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3], np.int32)
    head([emb, labels])
    monkeypatch.setattr(margins, "cosine_to_rows", counting)
    head([emb, labels], training=True)
    assert len(calls) == 1
