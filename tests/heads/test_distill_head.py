"""MarginDistillationHead: margins and logits against the float64 reference, no gradient
through the margin, frozen centers under model.fit, saving."""

import keras
import numpy as np
import pytest
from keras import ops

from tests import reference as ref
from tests.autodiff import value_and_grads
from tfmargin.heads import MarginDistillationHead

pytestmark = pytest.mark.backends


def _built(centers, **kwargs):
    head = MarginDistillationHead(centers, **kwargs)
    d = centers.shape[0]
    head.build([(None, d), (None,), (None, d)])
    return head


def _near(centers, labels, noise, rng):
    """Teacher embeddings near their class centers (cosines spread by `noise`)."""
    return (ref.unit(centers[:, labels].T) + noise * rng.normal(size=(len(labels), centers.shape[0])))


@pytest.mark.parametrize("options", [{}, {"clip": True}, {"d_max": 0.8}, {"m_max": 0.6, "m_min": 0.1}])
def test_margins_match_reference(options, rng):
    centers = rng.normal(size=(16, 20)).astype("float32")
    labels = rng.integers(0, 20, 32)
    teacher = _near(centers, labels, 0.3, rng).astype("float32")
    teacher[:3] = -teacher[:3]  # negative teacher cosines: margins below m_min unless clipped
    head = _built(centers, **options)
    got = ops.convert_to_numpy(head.margins(teacher, labels))
    expect = ref.md_margins(teacher, centers, labels, **options)
    np.testing.assert_allclose(got, expect, atol=1e-5)
    if not options.get("clip") and "d_max" not in options:
        assert got.max() == pytest.approx(options.get("m_max", 0.5), abs=1e-6)  # closest sample
        assert got[:3].max() < options.get("m_min", 0.2)


def test_margins_when_every_teacher_cosine_is_equal(rng):
    centers = rng.normal(size=(8, 4)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0])
    teacher = ref.unit(centers[:, labels].T).astype("float32")  # every cos_t == 1
    np.testing.assert_allclose(ops.convert_to_numpy(_built(centers).margins(teacher, labels)), 0.5,
                               atol=1e-5)


def test_batch_of_one_gets_m_max(rng):
    centers = rng.normal(size=(8, 4)).astype("float32")
    teacher = _near(centers, np.array([2]), 0.5, rng).astype("float32")
    head = _built(centers)
    assert ops.convert_to_numpy(head.margins(teacher, np.array([2])))[0] == pytest.approx(0.5, abs=1e-5)
    out = ops.convert_to_numpy(head([rng.normal(size=(1, 8)).astype("float32"), np.array([2]), teacher]))
    assert out.shape == (1, 4) and np.all(np.isfinite(out))


def test_logits_match_reference(rng):
    centers = rng.normal(size=(16, 20)).astype("float32")
    labels = rng.integers(0, 20, 24)
    teacher = _near(centers, labels, 0.4, rng).astype("float32")
    student = _near(centers, labels, 0.8, rng).astype("float32")
    out = ops.convert_to_numpy(_built(centers)([student, labels, teacher]))
    m = ref.md_margins(teacher, centers, labels)
    np.testing.assert_allclose(out, ref.margin_logits(student, centers, labels, 64.0, m2=m), atol=2e-3)


def test_gradient_flows_to_student_not_through_margin(rng):
    centers = rng.normal(size=(6, 5)).astype("float32")
    labels = np.array([0, 4, 4, 2])
    teacher = _near(centers, labels, 0.5, rng)
    student = rng.normal(size=(4, 6))
    head = _built(centers)
    lab = ops.convert_to_tensor(labels, "int32")

    def loss(s, t):
        logits = head([s, lab, t])
        return ops.mean(ops.sparse_categorical_crossentropy(lab, logits, from_logits=True))

    _, (g_student, g_teacher) = value_and_grads(loss, student, teacher)
    np.testing.assert_array_equal(g_teacher, 0.0)
    m = ref.md_margins(teacher, centers, labels)  # held fixed: no gradient through m

    def ref_loss(s):
        return ref.cross_entropy(ref.margin_logits(s, centers, labels, 64.0, m2=m), labels)

    np.testing.assert_allclose(g_student, ref.numeric_grad(ref_loss, student), rtol=2e-3, atol=2e-3)


def test_embedding_size_mismatch_is_a_clear_error(rng):
    head = MarginDistillationHead(rng.normal(size=(512, 10)))
    with pytest.raises(ValueError, match="student embedding size 128 does not match .* 512"):
        head([keras.Input((128,)), keras.Input((), dtype="int32"), keras.Input((512,))])
    head = MarginDistillationHead(rng.normal(size=(512, 10)))
    with pytest.raises(ValueError, match="teacher embedding size 256"):
        head([keras.Input((512,)), keras.Input((), dtype="int32"), keras.Input((256,))])


def test_bad_arguments():
    with pytest.raises(ValueError, match="centers must be"):
        MarginDistillationHead(np.zeros(5))
    with pytest.raises(ValueError, match="d_max"):
        MarginDistillationHead(np.ones((4, 3)), d_max="dataset")


def _student(centers):
    d, c = centers.shape
    image = keras.Input((12,), name="image")
    label = keras.Input((), dtype="int32", name="label")
    teacher = keras.Input((d,), name="teacher")
    x = keras.layers.Dense(32, activation="relu", name="hidden")(image)
    emb = keras.layers.Dense(d, name="embedding")(x)
    logits = MarginDistillationHead(centers, name="md_head")([emb, label, teacher])
    return keras.Model({"image": image, "label": label, "teacher": teacher}, logits)


def test_fit_trains_backbone_and_keeps_centers_bit_for_bit(rng):
    c, d, n = 6, 8, 96
    centers = rng.normal(size=(d, c)).astype("float32")
    labels = rng.integers(0, c, n).astype("int32")
    # Images that carry their label, so the student can learn; teacher near its centers.
    images = (np.eye(c)[labels] @ rng.normal(size=(c, 12)) + 0.1 * rng.normal(size=(n, 12))).astype("float32")
    x = {"image": images, "label": labels, "teacher": _near(centers, labels, 0.3, rng).astype("float32")}
    model = _student(centers)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head = model.get_layer("md_head")
    assert [w.name for w in head.trainable_weights] == [] and head.non_trainable_weights
    before = [np.array(w) for w in model.get_layer("hidden").get_weights()]
    loss0 = model.evaluate(x, labels, batch_size=32, verbose=0)
    history = model.fit(x, labels, batch_size=32, epochs=8, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < 0.8 * loss0
    np.testing.assert_array_equal(ops.convert_to_numpy(head.centers), centers)
    after = model.get_layer("hidden").get_weights()
    assert not np.allclose(before[0], after[0])


def test_keras_round_trip_keeps_centers(tmp_path, rng):
    centers = rng.normal(size=(8, 5)).astype("float32")
    model = _student(centers)
    x = {"image": rng.normal(size=(4, 12)).astype("float32"),
         "label": np.array([0, 1, 2, 4], "int32"), "teacher": rng.normal(size=(4, 8)).astype("float32")}
    model.save(tmp_path / "s.keras")
    loaded = keras.models.load_model(tmp_path / "s.keras")
    head = loaded.get_layer("md_head")
    np.testing.assert_array_equal(ops.convert_to_numpy(head.centers), centers)
    assert (head.m_max, head.m_min, head.d_max, head.clip) == (0.5, 0.2, "batch", False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
