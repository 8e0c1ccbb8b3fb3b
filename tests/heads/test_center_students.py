"""The two center-reusing students of the comparison, built as `--method` builds them:
`arcdistill` (the teacher's frozen centers, a constant margin) and `arcface_init` (ArcFace whose
trainable centers start at the teacher's), against the float64 reference (TF and JAX)."""

import keras
import numpy as np
import pytest
from keras import ops

from tests import reference as ref
from tfmargin.train import TrainConfig, make_head

pytestmark = pytest.mark.backends


def _head(method, centers, **fields):
    config = TrainConfig(method=method, scale=30.0, data="d", teacher_signal="s", **fields)
    return make_head(config, centers.shape[1], centers=centers)


@pytest.mark.parametrize("margin", [None, 0.35])
def test_arcdistill_is_arcface_on_the_frozen_teacher_centers(rng, margin):
    centers = rng.normal(size=(16, 12)).astype("float32")
    labels = rng.integers(0, 12, 20)
    student = rng.normal(size=(20, 16)).astype("float32")
    teacher = rng.normal(size=(20, 16)).astype("float32")  # read, never used
    head = _head("arcdistill", centers, margin=margin)
    out = ops.convert_to_numpy(head([student, labels, teacher]))
    m = 0.5 if margin is None else margin
    np.testing.assert_allclose(out, ref.margin_logits(student, centers, labels, 30.0, m2=m),
                               atol=1e-3)
    np.testing.assert_allclose(ops.convert_to_numpy(head.margins(teacher, labels)), m, atol=1e-7)
    assert not head.trainable_weights  # the centers stay the teacher's


def test_arcface_init_starts_at_the_teacher_centers_and_learns(rng):
    centers = rng.normal(size=(16, 12)).astype("float32")
    labels = rng.integers(0, 12, 20).astype("int32")
    student = rng.normal(size=(20, 16)).astype("float32")
    head = _head("arcface_init", centers)
    out = ops.convert_to_numpy(head([student, labels]))
    np.testing.assert_allclose(out, ref.margin_logits(student, centers, labels, 30.0, m2=0.5),
                               atol=1e-3)
    np.testing.assert_array_equal(ops.convert_to_numpy(head.centers), centers)
    assert [w.name for w in head.trainable_weights] == ["centers"]
    # one SGD step moves them: trainable, unlike arcdistill's
    emb = keras.Input((16,))
    lab = keras.Input((), dtype="int32")
    model = keras.Model([emb, lab], head([emb, lab]))
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch([student, labels], labels)
    assert not np.allclose(ops.convert_to_numpy(head.centers), centers)


def test_arcface_init_refuses_centers_of_another_size(rng):
    from tfmargin.heads import ArcFace

    with pytest.raises(ValueError, match=r"initial_centers must be \(embedding_dim, 5\)"):
        ArcFace(5, initial_centers=np.zeros((8, 4), "float32"))
    head = ArcFace(4, initial_centers=np.zeros((8, 4), "float32"))
    with pytest.raises(ValueError, match="initial_centers are 8-d, the embeddings 16-d"):
        head.build([(None, 16), (None,)])
