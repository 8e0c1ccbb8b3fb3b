"""AdaDistillHead (AdaArcDistill) against a float64 numpy restatement of the authors' update
(TF and JAX): the centers' EMA, duplicates, the logits, inference, warm-up, saving."""

import keras
import numpy as np
import pytest
from keras import ops

from tests import reference as ref
from tfmargin.heads import AdaDistillHead, SoftmaxWarmup

pytestmark = pytest.mark.backends


def reference_step(centers, student, teacher, labels):
    """(new centers, w) in float64: the EMA of the module docstring, sample by sample from the
    centers before the step; a repeated class keeps its last occurrence's update."""
    W = centers.astype(np.float64).copy()
    s, t = ref.unit(student.astype(np.float64)), ref.unit(teacher.astype(np.float64))
    own = W[:, labels].T
    alpha = np.clip(np.sum(s * t, axis=1), -1, 1)
    lam = np.clip(np.sum(ref.unit(own) * t, axis=1), 1e-6, 1)
    w = np.clip(alpha * lam, 1e-6, 1)
    new = w[:, None] * own + (1 - w[:, None]) * t
    for i, y in enumerate(labels):  # in batch order: the last occurrence stays
        W[:, y] = new[i]
    return W, w


def _head(dim, classes, centers):
    head = AdaDistillHead(classes, scale=16.0, margin=0.5)
    head.build([(None, dim), (None,), (None, dim)])
    head.assign_centers(centers)
    return head


def test_training_call_updates_the_centers_then_gives_arcface_logits(rng):
    dim, classes = 8, 6
    centers = rng.normal(size=(dim, classes)).astype("float32")
    labels = np.array([0, 3, 3, 5, 1, 3], np.int32)            # class 3 three times
    teacher = (ref.unit(centers[:, labels].T) + 0.3 * rng.normal(size=(6, dim))).astype("float32")
    student = (teacher + 0.5 * rng.normal(size=(6, dim))).astype("float32")
    student[4] = -teacher[4]                                    # alpha < 0: w floored at 1e-6
    head = _head(dim, classes, centers)
    want_centers, w = reference_step(centers, student, teacher, labels)
    got_w = ops.convert_to_numpy(head.update_centers([student, labels, teacher]))
    np.testing.assert_allclose(got_w, w, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(head.centers), want_centers, atol=1e-5)
    untouched = [c for c in range(classes) if c not in labels]
    np.testing.assert_array_equal(ops.convert_to_numpy(head.centers)[:, untouched],
                                  centers[:, untouched])

    fresh = _head(dim, classes, centers)
    logits = ops.convert_to_numpy(fresh([student, labels, teacher], training=True))
    # (sample 4 sits near theta = pi, where float32 acos loses digits: hence rtol)
    np.testing.assert_allclose(logits, ref.margin_logits(student, want_centers, labels, 16.0,
                                                         m2=0.5), atol=2e-3, rtol=1e-3)
    # inference leaves the centers alone
    before = ops.convert_to_numpy(fresh.centers).copy()
    fresh([student, labels, teacher])
    np.testing.assert_array_equal(ops.convert_to_numpy(fresh.centers), before)


def test_warmup_updates_the_centers_and_holds_the_margin_back(rng):
    dim, classes = 8, 5
    centers = rng.normal(size=(dim, classes)).astype("float32")
    labels = np.array([0, 1, 2, 3], np.int32)
    teacher = rng.normal(size=(4, dim)).astype("float32")
    student = rng.normal(size=(4, dim)).astype("float32")
    inner = _head(dim, classes, centers)
    head = SoftmaxWarmup(inner, warmup_steps=3)
    out = ops.convert_to_numpy(head([student, labels, teacher], training=True))
    want_centers, _ = reference_step(centers, student, teacher, labels)
    np.testing.assert_allclose(ops.convert_to_numpy(inner.centers), want_centers, atol=1e-5)
    np.testing.assert_allclose(out, 16.0 * ref.unit(student.astype(np.float64))
                               @ ref.unit(want_centers, axis=0), atol=1e-3)  # no margin yet


def test_only_the_backbone_learns_and_the_head_round_trips(rng, tmp_path):
    dim, classes = 8, 4
    emb, lab, tea = keras.Input((dim,)), keras.Input((), dtype="int32"), keras.Input((dim,))
    dense = keras.layers.Dense(dim)
    head = AdaDistillHead(classes, scale=16.0, name="head")
    model = keras.Model([emb, lab, tea], head([dense(emb), lab, tea]))
    assert [w.path for w in model.trainable_weights] == [w.path for w in dense.weights]
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = [rng.normal(size=(8, dim)).astype("float32"), rng.integers(0, classes, 8).astype("int32"),
         rng.normal(size=(8, dim)).astype("float32")]
    before = ops.convert_to_numpy(head.centers).copy()
    model.fit(x, x[1], epochs=1, batch_size=8, verbose=0)
    after = ops.convert_to_numpy(head.centers)
    assert not np.allclose(before, after)  # moved by the EMA, not by the optimiser
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded.get_layer("head").centers), after)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x)),
                               atol=1e-5)
