"""Repeatable training: `--deterministic` makes two runs of one command (and a resumed run
against an uninterrupted one) end with the same weights, bit for bit.

Measured on a 2-core CPU (docs/training.md): without it, two processes training MobileFaceNet
on the same batches part within a few steps, and op determinism alone does not fix it; what
does is running TensorFlow's independent ops one at a time (inter-op parallelism 1), which
removes a race between ops of one step. Kernels keep their intra-op threads, so the cost is
small on CPU. Op determinism is turned on as well (it makes TensorFlow refuse kernels that
have no deterministic version, e.g. some GPU scatters).

Inter-op parallelism can only be set before TensorFlow runs its first op: the CLI does it at
start-up; in a notebook call `prepare()` first thing, or `train()` raises ConfigError.
"""

import contextlib

import keras

from tfmargin.train.config import ConfigError


def prepare():
    """Ask TensorFlow for one inter-op thread; True when that is (or already was) in force.
    Call before TensorFlow runs its first op (later calls cannot change it)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime is up: the setting is what it is
        pass
    return tf.config.threading.get_inter_op_parallelism_threads() == 1


@contextlib.contextmanager
def determinism(enabled, seed):
    """Seed Python, NumPy and the backend; with `enabled` (TensorFlow backend), one inter-op
    thread and op determinism for the duration (op determinism is process-wide: put back)."""
    keras.utils.set_random_seed(seed)
    if not enabled or keras.backend.backend() != "tensorflow":
        yield  # the JAX backend on CPU is deterministic for a fixed seed already
        return
    if not prepare():
        raise ConfigError("deterministic: TensorFlow already runs ops in parallel in this "
                          "process; call tfmargin.train.determinism.prepare() before any "
                          "TensorFlow work (the CLI does), or train in a fresh process")
    import tensorflow as tf

    was_on, switch_off = _op_determinism_state()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_on and switch_off is not None:
            switch_off()


def _op_determinism_state():
    """(whether op determinism is on, a function that turns it off). TensorFlow's public API
    can only turn it on; reading and resetting it are private (tensorflow.python.framework
    .config). Without them (another TensorFlow), fall back to the public API alone: assume
    off, and leave it on after the run (slower ops for the rest of the process, never wrong)."""
    try:
        from tensorflow.python.framework import config as tf_config
        return tf_config.is_op_determinism_enabled(), tf_config.disable_op_determinism
    except (ImportError, AttributeError):  # another TensorFlow (tested by monkeypatch)
        return False, None
