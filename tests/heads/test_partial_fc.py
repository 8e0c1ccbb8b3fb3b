"""Partial FC (sample_rate < 1) on the center-holding heads: the sampler's guarantees, the loss
against a float64 reference over the sampled columns, exactly the full head when every class is
drawn, the same MarginDistillation margins, and training and saving through model.fit."""

import keras
import numpy as np
import pytest
from keras import ops

from tests import reference as ref
from tests.autodiff import value_and_grads
from tfmargin import margins
from tfmargin.heads import (AdaDistillHead, ArcFace, MarginDistillationHead, SampledSoftmaxLoss,
                            compile_loss)

pytestmark = pytest.mark.backends


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.mark.parametrize("shards", [1, 4])
def test_sampler_keeps_every_positive_and_draws_the_rest_uniformly(shards, rng):
    C, K, B = 40, 16, 6
    labels = rng.integers(0, C, B).astype("int32")
    seed = keras.random.SeedGenerator(0)
    counts = np.zeros(C)
    for _ in range(300):
        index, local = (_np(t) for t in margins.sample_classes(labels, C, K, seed, shards))
        assert len(index) == K == len(set(index.tolist())) and np.all(np.diff(index) > 0)
        np.testing.assert_array_equal(index[local], labels)  # every target, at its column
        blocks = np.bincount(index // (C // shards), minlength=shards)
        assert np.all(blocks == K // shards)  # each shard gives its own share
        counts[index] += 1
    positives = np.unique(labels)
    assert np.all(counts[positives] == 300)
    others = np.setdiff1d(np.arange(C), positives)
    if shards == 1:  # uniform over the negatives: each drawn (K - P) / (C - P) of the time
        p = (K - len(positives)) / (C - len(positives))
        expected, sd = 300 * p, np.sqrt(300 * p * (1 - p))
        assert np.all(np.abs(counts[others] - expected) < 5 * sd)


def _reference_loss(emb, centers, labels, index, scale, m2):
    """Cross-entropy over the sampled columns only, the margin at each row's target."""
    local = np.searchsorted(index, labels)
    logits = ref.margin_logits(emb, centers[:, index], local, scale, m2=m2)
    return ref.cross_entropy(logits, local)


def test_sampled_arcface_loss_matches_the_reference(rng):
    B, D, C = 8, 12, 60
    emb = rng.normal(size=(B, D)).astype("float32")
    centers = rng.normal(size=(D, C)).astype("float32")
    labels = rng.integers(0, C, B).astype("int32")
    twin = ArcFace(C, scale=16.0, initial_centers=centers, sample_rate=0.25, sample_seed=7)
    head = ArcFace(C, scale=16.0, initial_centers=centers, sample_rate=0.25, sample_seed=7)
    twin.build([(None, D), (None,)])
    index = _np(twin.sample(labels, B)[0])  # the same seed draws the same classes first
    assert len(index) == head.num_sampled(B) == 15
    out = head([emb, labels], training=True)
    assert tuple(out.shape) == (B, 1 + len(index))
    loss = float(np.mean(_np(SampledSoftmaxLoss(reduction=None)(labels, out))))
    assert loss == pytest.approx(_reference_loss(emb, centers, labels, index, 16.0, 0.5),
                                 abs=1e-4)


def test_every_class_drawn_is_the_full_head_exactly(rng):
    """sample_rate just under 1 draws all C classes: loss and gradients of the full head."""
    B, D, C = 6, 10, 30
    emb = rng.normal(size=(B, D)).astype("float32")
    centers = rng.normal(size=(D, C)).astype("float32")
    labels = rng.integers(0, C, B).astype("int32")
    full = ArcFace(C, scale=20.0)
    part = ArcFace(C, scale=20.0, sample_rate=0.999)
    for h in (full, part):
        h.build([(None, D), (None,)])
    assert part.num_sampled(B) == C and part.samples
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss_full(e, w):
        return ce(labels, margins.margin_logits(e, w, labels, 20.0, m2=0.5))

    def loss_part(e, w):
        index, local = part.sample(labels, B)
        cos = margins.cosine_logits(e, ops.take(w, index, axis=1))
        out = margins.target_first(margins.apply_margin(cos, local, 20.0, m2=0.5), local)
        return compile_loss(part)(labels, out)

    v_full, g_full = value_and_grads(loss_full, emb, centers)
    v_part, g_part = value_and_grads(loss_part, emb, centers)
    assert v_part == pytest.approx(v_full, abs=1e-5)
    for a, b in zip(g_part, g_full):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # and the layer itself gives that loss
    part.assign_centers(centers)
    full.assign_centers(centers)
    got = float(compile_loss(part)(labels, part([emb, labels], training=True)))
    assert got == pytest.approx(float(compile_loss(full)(labels, full([emb, labels]))), abs=1e-5)


def test_margin_distillation_keeps_its_margins_and_samples_negatives(rng):
    B, D, C = 8, 12, 48
    centers = rng.normal(size=(D, C)).astype("float32")
    labels = rng.integers(0, C, B).astype("int32")
    teacher = (ref.unit(centers[:, labels].T) + 0.3 * rng.normal(size=(B, D))).astype("float32")
    emb = rng.normal(size=(B, D)).astype("float32")
    full = MarginDistillationHead(centers, scale=16.0)
    head = MarginDistillationHead(centers, scale=16.0, sample_rate=0.25, sample_seed=3)
    twin = MarginDistillationHead(centers, scale=16.0, sample_rate=0.25, sample_seed=3)
    for h in (full, head, twin):
        h.build([(None, D), (None,), (None, D)])
    m_full, m_part = _np(full.margins(teacher, labels)), _np(head.margins(teacher, labels))
    np.testing.assert_allclose(m_part, m_full, atol=1e-6)
    np.testing.assert_allclose(m_full, ref.md_margins(teacher, centers, labels), atol=1e-5)
    index = _np(twin.sample(labels, B)[0])
    out = head([emb, labels, teacher], training=True)
    loss = float(np.mean(_np(SampledSoftmaxLoss(reduction=None)(labels, out))))
    assert loss == pytest.approx(_reference_loss(emb, centers, labels, index, 16.0, m_full),
                                 abs=1e-4)
    # outside training every class is scored, target first
    assert tuple(head([emb, labels, teacher]).shape) == (B, 1 + C)


def test_bad_sample_rates_are_refused():
    with pytest.raises(ValueError, match="sample_rate must be in"):
        ArcFace(10, sample_rate=0.0)
    with pytest.raises(ValueError, match="sample_shards"):
        ArcFace(10, sample_rate=0.5, sample_shards=3)


def test_sampled_students_train_save_and_load(tmp_path, rng):
    """model.fit through the sampled loss and accuracy, then a .keras round trip."""
    from tfmargin.train.build import compiled_classifier

    B, D, C = 16, 8, 40
    images = rng.uniform(-1, 1, (64, 112, 112, 3)).astype("float32")
    labels = rng.integers(0, C, 64).astype("int32")
    for make, teacher_dim in ((lambda: AdaDistillHead(C, scale=8.0, sample_rate=0.5), D),
                              (lambda: ArcFace(C, scale=8.0, sample_rate=0.5), None)):
        inp = keras.Input((112, 112, 3))
        x = keras.layers.Conv2D(4, 8, strides=8)(inp)
        backbone = keras.Model(inp, keras.layers.Dense(D)(keras.layers.Flatten()(x)))
        head = make()
        model = compiled_classifier(backbone, head, teacher_dim=teacher_dim)
        x = {"image": images, "label": labels}
        if teacher_dim:
            x["teacher"] = rng.normal(size=(64, D)).astype("float32")
        history = model.fit(x, labels, batch_size=B, epochs=2, verbose=0).history
        assert np.all(np.isfinite(history["loss"])) and "accuracy" in history
        path = str(tmp_path / f"{head.name}.keras")
        model.save(path)
        again = keras.models.load_model(path)
        inner = again.get_layer(head.name)
        assert inner.sample_rate == 0.5 and inner.samples
        np.testing.assert_allclose(_np(inner.centers), _np(head.centers))


def test_every_class_of_a_batch_of_unknown_size_is_kept():
    """TensorFlow fed numpy arrays or a PyDataset traces the batch size as None: the sample
    still grows to hold every class of the batch (16 of them here, where the rate alone gives
    5 of 100)."""
    if keras.backend.backend() != "tensorflow":
        return  # JAX traces every shape: the batch is always known (the tests above)
    import tensorflow as tf

    head = ArcFace(100, scale=16.0, sample_rate=0.05, sample_seed=0)
    head.build([(None, 8), (None,)])
    spec = [tf.TensorSpec([None, 8]), tf.TensorSpec([None], tf.int32)]

    @tf.function(input_signature=spec)
    def step(emb, labels):
        index, columns = head.sample(labels, tf.shape(labels)[0])
        return index, columns, head([emb, labels], training=True)

    labels = (np.arange(16) * 6).astype("int32")
    index, columns, out = step(np.ones((16, 8), "float32"), labels)
    np.testing.assert_array_equal(_np(index)[_np(columns)], labels)
    assert tuple(out.shape) == (16, 17)
