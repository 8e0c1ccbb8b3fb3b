"""Softmax warm-up: margin-free logits for the first N training steps, the head's margin
logits from step N on, checked against a float64 numpy reference."""

import keras
import numpy as np

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
