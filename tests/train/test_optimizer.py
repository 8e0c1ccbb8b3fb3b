"""Weight decay the paper's way: CoupledSGD against a float64 restatement of MXNet's
`sgd_mom_update` over many steps, which variables are exempt, and the strength gap to Keras'
decoupled decay (docs/training.md)."""

import keras
import numpy as np
import pytest

from tfmargin.train import CoupledSGD, TrainConfig, build_optimizer

NAMES = ("kernel", "bias", "gamma", "beta", "alpha", "centers")


def mxnet_sgd_mom_update(w, grads, lr, momentum, wd, decayed):
    """MXNet's sgd_mom_update, float64: mom = mu*mom - lr*(grad + wd*w); w += mom. insightface
    sets wd_mult 0 for *_bias and *_beta, i.e. `decayed` False."""
    w, mom = np.array(w, np.float64), np.zeros_like(w, np.float64)
    for g in grads:
        mom = momentum * mom - lr * (g + (wd * w if decayed else 0.0))
        w = w + mom
    return w


def _variables(rng):
    return [keras.Variable(rng.normal(size=(3, 4)).astype("float32"), name=n) for n in NAMES]


@pytest.mark.backends
def test_coupled_sgd_is_mxnet_sgd_mom_update(rng, steps=300):
    variables = _variables(rng)
    start = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]
    grads = [[rng.normal(scale=0.1, size=(3, 4)) for _ in variables] for _ in range(steps)]
    opt = CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=5e-3)
    for step in grads:
        opt.apply([keras.ops.convert_to_tensor(g.astype("float32")) for g in step], variables)
    for i, (v, w0) in enumerate(zip(variables, start)):
        decayed = v.name not in ("bias", "beta")
        want = mxnet_sgd_mom_update(w0, [s[i] for s in grads], 0.1, 0.9, 5e-3, decayed)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(v), want, rtol=2e-5, atol=2e-5,
                                   err_msg=v.name)
    assert [opt.decays(v) for v in variables] == [True, False, True, False, True, True]


def test_coupled_sgd_takes_the_row_sparse_gradient_of_a_sampled_step(rng, steps=50):
    """Partial FC under TensorFlow hands the centers' gradient over as IndexedSlices (the
    sampled rows): the update is MXNet's rule on the same gradient made dense (momentum and
    decay reach every row, as in arcface_torch)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("IndexedSlices are TensorFlow's")
    import tensorflow as tf

    rows = keras.Variable(rng.normal(size=(10, 4)).astype("float32"), name="centers")
    start = keras.ops.convert_to_numpy(rows).astype(np.float64)
    opt = CoupledSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=5e-3)
    dense = []
    for _ in range(steps):
        index = np.sort(rng.choice(10, 3, replace=False))
        values = rng.normal(scale=0.1, size=(3, 4))
        g = np.zeros((10, 4))
        g[index] = values
        dense.append(g)
        opt.apply([tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(index),
                                    tf.constant([10, 4]))], [rows])
    want = mxnet_sgd_mom_update(start, dense, 0.1, 0.9, 5e-3, True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rows), want, rtol=2e-5, atol=2e-5)


@pytest.mark.backends
@pytest.mark.slow
def test_decay_strength_coupled_against_decoupled():
    """2,000 zero-gradient steps at lr 0.1, momentum 0.9, wd 5e-4: MXNet's rule leaves
    ~exp(-1) = 0.368 of a weight, Keras' decoupled decay ~exp(-0.1) = 0.905."""
    left = {}
    for mode in ("coupled", "decoupled"):
        config = TrainConfig(lr=0.1, lr_schedule="piecewise", lr_steps=(10_000,),
                             weight_decay=5e-4, weight_decay_mode=mode, steps=10_000)
        opt = build_optimizer(config)
        w = keras.Variable(np.ones((4,), "float32"), name="kernel")
        zero = keras.ops.zeros((4,))
        for _ in range(2000):
            opt.apply([zero], [w])
        left[mode] = float(keras.ops.convert_to_numpy(w)[0])
    want = mxnet_sgd_mom_update(np.ones(1), [np.zeros(1)] * 2000, 0.1, 0.9, 5e-4, True)[0]
    assert left["coupled"] == pytest.approx(want, rel=1e-4)
    assert left["coupled"] == pytest.approx(0.368, abs=0.002)
    assert left["decoupled"] == pytest.approx((1 - 0.1 * 5e-4) ** 2000, rel=1e-4)
    assert left["decoupled"] == pytest.approx(0.905, abs=0.001)


def test_exempt_variables_of_a_real_student_and_frozen_centers(tiny_config, signal):
    """A built `mbf` MarginDistillation student stepped with zero gradients: every kernel,
    BatchNorm gamma and PReLU slope shrinks by exactly MXNet's factor, biases and betas stay
    bit for bit, and the frozen teacher centers are not even the optimiser's."""
    from tfmargin.train import build_student

    built = build_student(tiny_config.replace(backbone="mbf", embedding_size=16, lr=0.1,
                                              lr_steps=(1000,), weight_decay=0.01), signal)
    opt, model = built.model.optimizer, built.model
    trainable = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in trainable]
    for _ in range(3):
        opt.apply([keras.ops.zeros(v.shape) for v in trainable], trainable)
    shrink = mxnet_sgd_mom_update(np.ones(1), [np.zeros(1)] * 3, 0.1, 0.9, 0.01, True)[0]
    kinds = set()
    for v, w0 in zip(trainable, before):
        w = keras.ops.convert_to_numpy(v).astype(np.float64)
        kind = v.path.split("/")[-1]
        kinds.add(kind)
        if kind in ("bias", "beta"):
            np.testing.assert_array_equal(w, w0, err_msg=v.path)
        else:
            np.testing.assert_allclose(w, w0 * shrink, rtol=1e-5, atol=1e-9, err_msg=v.path)
    assert {"kernel", "gamma", "beta", "alpha"} <= kinds  # PReLU's slope is "alpha" in Keras
    frozen = built.head.center_rows
    assert not frozen.trainable and all(v is not frozen for v in trainable)


def test_weight_decay_mode_is_checked():
    from tfmargin.train import ConfigError, validate

    with pytest.raises(ConfigError, match="^weight_decay_mode: 'l2' is not one of coupled"):
        validate(TrainConfig(data="x", weight_decay_mode="l2"), check_files=False)
    with pytest.raises(ValueError, match="coupled_weight_decay"):
        CoupledSGD(0.1, weight_decay=1e-4)


def test_coupled_sgd_round_trips_through_keras_serialization():
    opt = CoupledSGD(0.05, momentum=0.9, coupled_weight_decay=1e-4, exempt=("bias",))
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is CoupledSGD
    assert again.coupled_weight_decay == 1e-4 and again.exempt == ("bias",)
