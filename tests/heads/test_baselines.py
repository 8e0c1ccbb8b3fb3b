"""Distillation baselines against float64 references, and each one training under model.fit."""

import keras
import numpy as np
import pytest
from keras import ops

from tests import reference as ref
from tfmargin import losses
from tfmargin.heads import (AngularDistillationHead, EmbeddingDistillationHead, HintonKDHead,
                            MarginKDHead, TripletDistillationHead, compile_loss)

pytestmark = pytest.mark.backends


def _np(x):
    return ops.convert_to_numpy(x)


def test_cosine_and_l2_embedding_distillation(rng):
    s, t = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    expect_cos = np.mean([1 - ref.unit(a) @ ref.unit(b) for a, b in zip(s, t)])
    expect_l2 = np.mean([np.sum((a - b) ** 2) for a, b in zip(s, t)])
    f32 = [a.astype("float32") for a in (s, t)]
    assert float(losses.embedding_distillation(*f32, "cos")) == pytest.approx(expect_cos, rel=1e-5)
    assert float(losses.embedding_distillation(*f32, "l2")) == pytest.approx(expect_l2, rel=1e-5)
    loss = losses.EmbeddingDistillationLoss("cos")
    assert float(loss(f32[1], f32[0])) == pytest.approx(expect_cos, rel=1e-5)


def test_kd_divergence(rng):
    zt, zs = rng.normal(size=(6, 9)) * 10, rng.normal(size=(6, 9)) * 10
    got = float(losses.kd_divergence(zt.astype("float32"), zs.astype("float32"), 4.0))
    assert got == pytest.approx(ref.kl_kd(zt, zs, 4.0), rel=1e-4)
    assert float(losses.kd_divergence(zt.astype("float32"), zt.astype("float32"), 4.0)) == pytest.approx(0, abs=1e-5)


def _triplet_batch(rng, student_spread):
    """12 embeddings of 4 identities (3 each, shuffled), student and teacher clustered."""
    labels = np.repeat(np.arange(4), 3)
    rng.shuffle(labels)
    student = rng.normal(size=(12, 6)) + student_spread * np.eye(6)[labels % 6]
    teacher = rng.normal(size=(12, 6)) + 3.0 * np.eye(6)[labels % 6]
    return labels, student, teacher


@pytest.mark.parametrize("kind", ["l2", "cos"])
def test_triplet_distillation_matches_brute_force(kind, rng):
    labels, student, teacher = _triplet_batch(rng, 2.0)
    got = float(losses.triplet_distillation(student.astype("float32"), teacher.astype("float32"),
                                            labels.astype("int32"), 0.5, 0.2, kind))
    assert got == pytest.approx(ref.triplet_distillation(student, teacher, labels, 0.5, 0.2, kind),
                                rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("kind", ["l2", "cos"])
def test_facenet_selection_matches_brute_force(kind, rng):
    labels, student, teacher = _triplet_batch(rng, 1.0)
    for draw in range(3):  # other draws pick other negatives
        noise = rng.uniform(size=(12, 12, 12))
        got = float(losses.triplet_distillation(
            student.astype("float32"), teacher.astype("float32"), labels.astype("int32"), 0.5,
            0.2, kind, "facenet", noise.astype("float32")))
        want = ref.triplet_distillation_facenet(student, teacher, labels, 0.5, 0.2, kind, noise)
        assert want > 0 and got == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_facenet_selection_leaves_out_satisfied_pairs():
    # two far-apart identities: no negative violates the margin, so no triplet is selected
    x = np.array([[1, 0], [1, 0.01], [-1, 0], [-1, -0.01]], "float32")
    labels = np.array([0, 0, 1, 1], "int32")
    noise = np.ones((4, 4, 4), "float32")
    assert float(losses.triplet_distillation(x, x, labels, 0.5, 0.2, "l2", "facenet",
                                             noise)) == 0.0
    assert float(losses.triplet_distillation(x, x, labels, 0.5, 0.2, "l2")) == 0.0


def test_triplet_distillation_without_pairs_is_zero(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    assert float(losses.triplet_distillation(x, x, np.arange(4, dtype="int32"))) == 0.0
    assert float(losses.triplet_distillation(x, x, np.zeros(4, "int32"))) == 0.0  # no negatives


def _centers_and_batch(rng, n=12, d=6, c=5):
    centers = rng.normal(size=(d, c)).astype("float32")
    labels = np.repeat(np.arange(c), 3)[:n].astype("int32")
    teacher = (ref.unit(centers[:, labels].T) + 0.3 * rng.normal(size=(n, d))).astype("float32")
    student = rng.normal(size=(n, d)).astype("float32")
    return centers, labels, teacher, student


def _added_loss(head, inputs):
    head(inputs)  # builds
    out = head(inputs)
    return out, float(sum(_np(l) for l in head.losses))


def test_angular_head(rng):
    centers, labels, teacher, student = _centers_and_batch(rng)
    head = AngularDistillationHead(5, alpha=0.7)
    head.build([(None, 6), (None,), (None, 6)])
    head.assign_centers(centers)
    logits, added = _added_loss(head, [student, labels, teacher])
    np.testing.assert_allclose(_np(logits), ref.margin_logits(student, centers, labels, 64.0, m2=0.5),
                               atol=2e-3)
    expect = 0.7 * np.mean([1 - ref.unit(a) @ ref.unit(b) for a, b in zip(student, teacher)])
    assert added == pytest.approx(expect, rel=1e-4)


@pytest.mark.parametrize("cls,margin", [(MarginKDHead, 0.5), (HintonKDHead, 0.0)])
def test_kd_heads(cls, margin, rng):
    centers, labels, teacher, student = _centers_and_batch(rng)
    head = cls(centers, scale=16.0, temperature=4.0, alpha=0.95)
    head.build([(None, 6), (None,), (None, 6)])
    own = rng.normal(size=centers.shape).astype("float32")
    head.assign_centers(own)
    z_s, added = _added_loss(head, [student, labels, teacher])
    plain_s = 16.0 * ref.unit(student, 1) @ ref.unit(own, 0)
    plain_t = 16.0 * ref.unit(teacher, 1) @ ref.unit(centers, 0)
    z_s_m = ref.margin_logits(student, own, labels, 16.0, m2=margin)
    z_t_m = ref.margin_logits(teacher, centers, labels, 16.0, m2=margin)
    hard = ref.cross_entropy(z_s_m, labels)
    # margin-based KD: the margin sits in the target logit of both sides of the soft term
    expect = 0.05 * hard + 0.95 * ref.kl_kd(z_t_m, z_s_m, 4.0)
    np.testing.assert_allclose(_np(z_s), plain_s, atol=1e-4)
    assert added == pytest.approx(expect, rel=1e-4)
    if margin:  # and that is not Hinton KD's soft term
        hinton = 0.05 * hard + 0.95 * ref.kl_kd(plain_t, plain_s, 4.0)
        assert abs(expect - hinton) > 1e-3 * abs(hinton)


@pytest.mark.parametrize("kind", ["l2", "cos"])
def test_triplet_and_embedding_heads(kind, rng):
    _, labels, teacher, student = _centers_and_batch(rng)
    head = TripletDistillationHead(distance=kind, selection="semi_hard")
    out, added = _added_loss(head, [student, labels, teacher])
    assert added == pytest.approx(ref.triplet_distillation(student, teacher, labels, 0.5, 0.2, kind),
                                  rel=1e-4, abs=1e-5)
    # the authors' selection, with the head's own draw made visible
    noise = rng.uniform(size=(len(labels),) * 3).astype("float32")
    head = TripletDistillationHead(distance=kind, seed=3)
    head.noise = lambda batch: noise
    _, added = _added_loss(head, [student, labels, teacher])
    assert added == pytest.approx(ref.triplet_distillation_facenet(
        student, teacher, labels, 0.5, 0.2, kind, noise), rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(_np(out), ref.unit(student), atol=1e-6)
    _, added = _added_loss(EmbeddingDistillationHead(kind), [student, labels, teacher])
    assert added == pytest.approx(float(losses.embedding_distillation(student, teacher, kind)), rel=1e-6)


HEADS = {
    "angular": lambda centers: AngularDistillationHead(centers.shape[1], scale=16.0),
    "margin_kd_t": lambda centers: MarginKDHead(centers, scale=16.0),
    "hinton_kd": lambda centers: HintonKDHead(centers, scale=16.0),
    "triplet_l2": lambda centers: TripletDistillationHead(distance="l2"),
    "triplet_cos": lambda centers: TripletDistillationHead(distance="cos"),
    "embedding": lambda centers: EmbeddingDistillationHead("cos"),
}


@pytest.mark.parametrize("method", sorted(HEADS))
def test_each_baseline_trains_with_fit(method, tmp_path, rng):
    c, d, n = 6, 8, 96
    centers = rng.normal(size=(d, c)).astype("float32")
    labels = np.tile(np.arange(c), n // c).astype("int32")
    images = (np.eye(c)[labels] @ rng.normal(size=(c, 12)) + 0.3 * rng.normal(size=(n, 12))).astype("float32")
    teacher = (ref.unit(centers[:, labels].T) + 0.2 * rng.normal(size=(n, d))).astype("float32")
    image, label, t = keras.Input((12,)), keras.Input((), dtype="int32"), keras.Input((d,))
    emb = keras.layers.Dense(d)(keras.layers.Dense(32, activation="relu")(image))
    head = HEADS[method](centers)
    model = keras.Model([image, label, t], head([emb, label, t]))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=compile_loss(head))
    x = [images, labels, teacher]
    y = labels if compile_loss(head) is not None else None
    before = model.evaluate(x, y, batch_size=24, verbose=0)
    model.fit(x, y, batch_size=24, epochs=10, shuffle=False, verbose=0)
    after = model.evaluate(x, y, batch_size=24, verbose=0)
    assert np.isfinite(after) and after < 0.9 * before, (before, after)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
