"""The one private TensorFlow API of determinism.py has a public fallback."""

import pytest

from tfmargin.train import determinism


def test_op_determinism_state_reads_the_private_switch():
    from tensorflow.python.framework import config as tf_config

    on, off = determinism._op_determinism_state()
    assert on == tf_config.is_op_determinism_enabled() and off is tf_config.disable_op_determinism


def test_op_determinism_state_without_the_private_api(monkeypatch):
    from tensorflow.python.framework import config as tf_config

    monkeypatch.delattr(tf_config, "is_op_determinism_enabled")
    assert determinism._op_determinism_state() == (False, None)


@pytest.mark.parametrize("seed", [None, 11])
def test_the_global_seed_is_put_back_after_building_a_stream(seed):
    import tensorflow as tf

    from tfmargin.train.inputs import _without_global_tf_seed

    tf.random.set_seed(seed)
    with _without_global_tf_seed():
        assert tf.compat.v1.random.get_seed(None)[0] is None
    assert tf.compat.v1.random.get_seed(None)[0] == seed
