"""Class centers held as (C, D) rows: the (D, C) view readers see, a row-sparse gradient for a
Partial FC step under TensorFlow, and files saved when the weight was (D, C) still loading."""

import io
import os
import zipfile

import keras
import numpy as np
import pytest
from keras import ops

from tfmargin.heads import (AdaDistillHead, ArcFace, HintonKDHead, MarginDistillationHead,
                            MarginHead, SoftmaxWarmup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "savedmodels", "demo_teacher", "classifier.keras")


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


@pytest.mark.backends
@pytest.mark.parametrize("make, rows", [
    (lambda c: ArcFace(c.shape[1], initial_centers=c), "center_rows"),
    (lambda c: MarginDistillationHead(c), "center_rows"),
    (lambda c: HintonKDHead(c), "teacher_rows"),  # the student's own start at random
])
def test_rows_are_the_transposed_centers(make, rows, rng):
    centers = rng.normal(size=(8, 5)).astype("float32")
    head = make(centers)
    head.build([(None, 8), (None,), (None, 8)])
    assert tuple(head.center_rows.shape) == tuple(getattr(head, rows).shape) == (5, 8)
    np.testing.assert_array_equal(_np(getattr(head, rows)), centers.T)
    np.testing.assert_array_equal(_np(head.centers), _np(head.center_rows).T)
    again = rng.normal(size=(8, 5)).astype("float32")
    head.assign_centers(again)
    np.testing.assert_array_equal(_np(head.centers), again)


@pytest.mark.backends
def test_a_seeded_head_starts_from_the_centers_it_drew_as_d_by_c():
    """The initializer draws (D, C) and hands the rows over, so seeded runs keep their start."""
    head = ArcFace(6, center_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=3))
    head.build([(None, 4), (None,)])
    want = _np(keras.initializers.RandomNormal(stddev=0.01, seed=3)((4, 6)))
    np.testing.assert_array_equal(_np(head.centers), want)


def test_a_sampled_step_gives_the_sampled_rows_only_under_tensorflow(rng):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("IndexedSlices are TensorFlow's")
    import tensorflow as tf

    C, D, B = 200, 16, 8
    head = ArcFace(C, scale=16.0, sample_rate=0.1, sample_seed=0)
    emb = tf.constant(rng.normal(size=(B, D)).astype("float32"))
    labels = tf.constant(rng.integers(0, C, B).astype("int32"))
    head([emb, labels])
    with tf.GradientTape() as tape:
        logits = head([emb, labels], training=True)
        loss = tf.reduce_mean(-tf.nn.log_softmax(logits)[:, 0])
    grad = tape.gradient(loss, head.center_rows.value)
    assert isinstance(grad, tf.IndexedSlices)
    assert tuple(grad.values.shape) == (head.num_sampled(B), D)
    rows = set(grad.indices.numpy().tolist())
    assert set(labels.numpy().tolist()) <= rows and len(rows) == head.num_sampled(B)
    # the same gradient, densified, as the full matrix the rows come from would get
    dense = tf.math.unsorted_segment_sum(grad.values, grad.indices, C).numpy()
    untouched = np.setdiff1d(np.arange(C), sorted(rows))
    assert np.all(dense[untouched] == 0) and np.any(dense[sorted(rows)] != 0)


def _stored(path, weight):
    """A weight as stored in a .keras file, read with h5py (not through Keras)."""
    import h5py

    with zipfile.ZipFile(path) as z:
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            return np.asarray(f[weight])


def test_the_shipped_teacher_saved_with_d_by_c_centers_loads():
    from tfmargin.models import load_model
    from tfmargin.models.io import find_centers

    stored = _stored(SHIPPED, "layers/softmax_warmup/head/vars/0")
    assert stored.shape == (512, 210)  # written before the rows layout
    model = load_model(SHIPPED)
    np.testing.assert_array_equal(find_centers(model), stored)
    head = model.get_layer("softmax_warmup").head
    np.testing.assert_array_equal(_np(head.center_rows), stored.T)


@pytest.mark.parametrize("cls", [MarginHead, MarginDistillationHead, AdaDistillHead])
def test_square_centers_of_an_old_config_are_transposed(cls, rng):
    """D == C cannot be told apart by shape: the config without `center_layout` says so."""
    dc = rng.normal(size=(6, 6)).astype("float32")
    fresh = (cls(6) if cls is not MarginDistillationHead else cls(dc))
    config = fresh.get_config()
    assert config.pop("center_layout") == "class_major"
    for new, want in ((False, dc.T), (True, dc)):
        layer = cls.from_config(config if not new else {**config, "center_layout": "class_major"})
        layer.build([(None, 6), (None,), (None, 6)])
        values = {str(i): _np(v) for i, v in enumerate(layer._trainable_variables
                                                        + layer._non_trainable_variables)}
        values[str(_index(layer))] = dc
        layer.load_own_variables(values)
        np.testing.assert_array_equal(_np(layer.center_rows), want)
        values[str(_index(layer))] = dc.T  # then a checkpoint of its own: rows, as they are
        layer.load_own_variables(values)
        np.testing.assert_array_equal(_np(layer.center_rows), dc.T)


def _index(layer):
    variables = layer._trainable_variables + layer._non_trainable_variables
    return [i for i, v in enumerate(variables) if v is layer.center_rows][0]


def test_a_d_by_c_weights_checkpoint_loads_into_rows(tmp_path, rng):
    """A .weights.h5 (BackupAndRestore, best weights) written with (D, C) centers."""
    dc = rng.normal(size=(4, 7)).astype("float32")
    inputs = [keras.Input((4,)), keras.Input((), dtype="int32")]
    model = keras.Model(inputs, SoftmaxWarmup(ArcFace(7, name="arc"), 1, 1, name="w")(inputs))
    path = str(tmp_path / "old.weights.h5")
    model.save_weights(path)
    import h5py

    with h5py.File(path, "r+") as f:
        name = "layers/softmax_warmup/head/vars/0"
        assert f[name].shape == (7, 4)
        del f[name]
        f[name] = dc
    model.load_weights(path)
    np.testing.assert_array_equal(_np(model.get_layer("w").centers), dc)


@pytest.mark.parametrize("mode, precision", [("coupled", "float32"), ("decoupled", "float32"),
                                             ("coupled", "mixed_float16")])
def test_a_backup_with_d_by_c_centers_and_momentum_resumes(tmp_path, rng, mode, precision):
    """A compiled model's backup holds the optimiser's momentum of the centers too: a run
    backed up while centers were (D, C) restores both, transposed, into a compiled model
    (under mixed_float16 through the loss-scaling optimiser)."""
    from tfmargin.train import TrainConfig
    from tfmargin.train.build import compile_classifier

    def compiled():
        inputs = [keras.Input((4,)), keras.Input((), dtype="int32")]
        head = ArcFace(7, scale=8.0, name="arc")
        model = keras.Model(inputs, head(inputs))
        config = TrainConfig(lr=0.1, momentum=0.9, weight_decay=5e-4, weight_decay_mode=mode,
                             lr_schedule="piecewise", lr_steps=(100,), steps=100)
        return compile_classifier(model, head, config)

    keras.mixed_precision.set_global_policy(precision)
    try:
        # the momentum is stored twice under loss scaling: the wrapper's and the inner's
        _resume_old_backup(tmp_path, rng, compiled, 3 if precision == "mixed_float16" else 2)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _resume_old_backup(tmp_path, rng, compiled, center_arrays):
    import h5py

    x = [rng.normal(size=(8, 4)).astype("float32"), rng.integers(0, 7, 8).astype("int32")]
    model = compiled()
    for _ in range(3):
        model.train_on_batch(x, x[1])
    path = str(tmp_path / "backup.weights.h5")
    model.save_weights(path)
    saved = {}
    with h5py.File(path, "r+") as f:  # as the earlier layout wrote it
        def old_layout(name, item):
            if isinstance(item, h5py.Dataset) and item.shape == (7, 4):
                saved[name] = item[()]
        f.visititems(old_layout)
        for name, value in saved.items():
            del f[name]
            f[name] = value.T
    assert len(saved) == center_arrays  # the centers and their momentum
    again = compiled()
    again.train_on_batch(x, x[1])  # the optimiser is built when a backup is restored
    again.load_weights(path)
    np.testing.assert_array_equal(_np(again.get_layer("arc").center_rows),
                                  _np(model.get_layer("arc").center_rows))
    slots = [v for v in again.optimizer.variables if "centers" in v.name]
    want = [v for v in model.optimizer.variables if "centers" in v.name]
    assert len(slots) == len(want) == 1
    np.testing.assert_array_equal(_np(slots[0]), _np(want[0]))


def test_saving_and_loading_never_read_the_transposed_view(tmp_path, monkeypatch):
    """Keras' saving reads every attribute dir() lists; the (D, C) view, a transpose of the
    centers, stays out of it."""
    from tfmargin.heads import centers as rows
    from tfmargin.models import load_model

    reads = []
    view = rows.CenterRows.centers

    def counted(self):
        reads.append(self.name)
        return view.fget(self)

    monkeypatch.setattr(rows.CenterRows, "centers", property(counted))
    inputs = [keras.Input((4,)), keras.Input((), dtype="int32"), keras.Input((4,))]
    warm = SoftmaxWarmup(ArcFace(7, name="arc"), 1, 1)(inputs[:2])
    kd = HintonKDHead(np.ones((4, 7), "float32"), name="kd")(inputs)
    model = keras.Model(inputs, [warm, kd])
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    load_model(tmp_path / "m.keras")
    model.load_weights(tmp_path / "m.weights.h5")
    assert reads == []
    assert "centers" not in dir(model.get_layer("kd")) and model.get_layer("kd").centers is not None
    assert reads == ["kd"]
