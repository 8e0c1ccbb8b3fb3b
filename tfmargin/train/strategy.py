"""--strategy=default|mirrored|multi_worker: tf.distribute strategies on the TensorFlow backend.

`mirrored` replicates the model over this machine's devices (GPUs, or logical CPUs); each
replica takes batch_size / replicas images. `multi_worker` needs TF_CONFIG describing the
cluster. Under JAX, only `default` is offered here (JAX spreads work with keras.distribution).
"""

import contextlib

import keras

from tfmargin.train.config import ConfigError


def make_strategy(name):
    """A tf.distribute.Strategy for `name` (None for `default`)."""
    if name == "default":
        return None
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"strategy: {name} needs KERAS_BACKEND=tensorflow (running on "
                          f"{keras.backend.backend()})")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"strategy: unknown strategy {name!r}")


def class_shards(name):
    """Blocks of the class axis Partial FC samples from separately: one per device when the
    centers are sharded over devices (model_parallel), else 1."""
    return 1


def scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def replicas(strategy):
    return strategy.num_replicas_in_sync if strategy is not None else 1
