"""--strategy: how a run spreads over devices, on the engine of its backend.

TensorFlow (tf.distribute):
  mirrored        replicates the model over this machine's devices (GPUs, or logical CPUs);
                  each replica takes batch_size / replicas images.
  multi_worker    MultiWorkerMirroredStrategy over the workers TF_CONFIG names (one process
                  per machine, each started with the same command and its own task index).
                  Keras 3's fit cannot run under it across workers (its pre-fit build
                  reduces the first distributed batch: "Attempt to convert a value
                  (PerReplica..."; its step reduces scalar logs along axis 0: "Invalid
                  reduction dimension 0"; tests/train/test_distribute.py reproduces both), so
                  tfmargin/train/workers.py runs the model's own train_step in its own loop.
JAX (keras.distribution):
  data_parallel   DataParallel over every device: the batch is split, the weights
                  replicated. Several hosts: set KERAS_DISTRIBUTION_JOB_ADDRESSES,
                  KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID on each
                  (keras.distribution.initialize, i.e. jax.distributed, runs first) and the
                  devices are every host's.
  model_parallel  one device mesh axis "batch" over every device: the batch is split along it
                  and each head's class centers ((C, D) rows) are sharded along the class axis
                  on it, as insightface's arcface_torch shards its FC; the backbone is
                  replicated.
                  Partial FC then samples per shard (each device its own classes). One
                  host's devices only: Keras cannot save centers sharded across hosts.
`default` is one device. Under JAX the global batch is fed whole and Keras shards it.
"""

import contextlib
import functools

import keras

from tfmargin.train.config import ConfigError

TF_STRATEGIES = ("mirrored", "multi_worker")
JAX_STRATEGIES = ("data_parallel", "model_parallel")
MESH_AXIS = "batch"
CENTERS = r"(.*/)?centers"  # every head's (C, D) class-center rows (a full match)


def make_strategy(name, devices=None):
    """A tf.distribute.Strategy or a keras.distribution.Distribution for `name` (None for
    `default`). `devices`: JAX device strings (default: every device)."""
    if name == "default":
        return None
    backend = keras.backend.backend()
    if name in JAX_STRATEGIES:
        if backend != "jax":
            raise ConfigError(f"strategy: {name} is keras.distribution on JAX; run with "
                              f"KERAS_BACKEND=jax (on {backend}: mirrored)")
        return keras_distribution(name, devices)
    if name not in TF_STRATEGIES:
        raise ConfigError(f"strategy: unknown strategy {name!r}")
    if backend != "tensorflow":
        raise ConfigError(f"strategy: {name} needs KERAS_BACKEND=tensorflow (running on "
                          f"{backend}: data_parallel or model_parallel)")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    # TF_CONFIG names the cluster and this worker; Keras' fit cannot run under this strategy
    # across workers, so training takes tfmargin/train/workers.py's loop
    return tf.distribute.MultiWorkerMirroredStrategy()


def keras_distribution(name, devices=None):
    import os

    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")) > 1 and devices is None:
        # several hosts: jax.distributed from KERAS_DISTRIBUTION_JOB_ADDRESSES /
        # _NUM_PROCESSES / _PROCESS_ID, once, before any device is listed
        _initialize_hosts()
    devices = list(devices or keras.distribution.list_devices())
    if name == "data_parallel":
        return HostDataParallel(devices=devices)
    if hosts() > 1:
        # Keras saves a model by reading each weight whole on one process: centers split over
        # several hosts' devices cannot be read there (tested with two host processes)
        raise ConfigError(f"strategy: model_parallel over {hosts()} hosts is not supported: "
                          f"Keras {keras.__version__} cannot save class centers sharded across "
                          "hosts; use data_parallel (with --sample_rate for many classes) or "
                          "model_parallel on one host's devices")
    mesh = keras.distribution.DeviceMesh((len(devices),), [MESH_AXIS], devices)
    layout = keras.distribution.LayoutMap(mesh)
    layout[CENTERS] = (MESH_AXIS, None)
    return keras.distribution.ModelParallel(layout_map=layout, batch_dim_name=MESH_AXIS)


HOST_SHARE = "_tfmargin_host_share"  # set on a stream already cut to this host's share


class HostDataParallel(keras.distribution.DataParallel):
    """keras.distribution's DataParallel, except that a stream tfmargin built for this host
    alone (`host_share`: the host reads and decodes only its own shard of the source) is fed
    as it is. Keras would take every host's share after the pipeline, so that every host read
    and decoded the whole stream; any other stream is still split that way."""

    def distribute_dataset(self, dataset):
        if getattr(dataset, HOST_SHARE, False):
            return dataset
        return super().distribute_dataset(dataset)


def host_share(strategy):
    """(this host's input pipeline, pipelines) when `strategy` spans several JAX hosts and
    each should read its own shard of the source, else None."""
    if not isinstance(strategy, HostDataParallel) or hosts() == 1:
        return None
    import jax

    return jax.process_index(), hosts()


def mark_host_share(dataset):
    setattr(dataset, HOST_SHARE, True)
    return dataset


@functools.cache
def _initialize_hosts():
    import os

    import jax

    # collectives between CPU hosts (the tests' localhost processes): gloo, JAX's default
    # today, named so that a changed default cannot break it; a user's choice stands
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize()  # once per process


def spans_hosts(strategy):
    """keras.distribution over several JAX hosts: there every process saves when the writer
    does (measured: process 0 saving alone during fit failed in JAX's cross-process check of a
    device_put; only the writer keeps what it saved) and the hosts agree on their callbacks
    (hosts.py)."""
    return is_keras_distribution(strategy) and hosts() > 1


def across_hosts(value):
    """(min, max) of an integer over every JAX host (one small gather)."""
    import numpy as np
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(np.asarray(value, np.int64)))
    return int(every.min()), int(every.max())


def same_on_every_host(value, what):
    """`value` (an int) from every JAX host; ConfigError naming `what` when they differ."""
    if hosts() == 1:
        return
    low, high = across_hosts(value)
    if low != high:
        raise ConfigError(f"{what}: the hosts differ ({low} and {high}); "
                          "it must be one directory that every host sees")


def is_writer(strategy):
    """Whether this process writes the run's files: under tf.distribute the chief (the `chief`
    task, or worker 0 without one), in a JAX run over several hosts process 0, else yes."""
    if strategy is not None and not is_keras_distribution(strategy):
        return bool(strategy.extended.should_checkpoint)
    if hosts() > 1:
        import jax

        return jax.process_index() == 0
    return True


def hosts():
    """Processes of this JAX run (1 unless keras.distribution.initialize joined several)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def is_keras_distribution(strategy):
    return isinstance(strategy, (keras.distribution.DataParallel,
                                 keras.distribution.ModelParallel))


def class_shards(name):
    """Blocks of the class axis Partial FC samples from separately: one per device when the
    centers are sharded over devices (model_parallel), else 1."""
    if name != "model_parallel" or keras.backend.backend() != "jax":
        return 1
    return len(keras.distribution.list_devices())


def check_fits(strategy, num_classes, batch_size):
    """keras.distribution splits the batch evenly over the devices, and model_parallel the
    class axis too."""
    if not is_keras_distribution(strategy):
        return
    n = len(strategy.device_mesh.devices.ravel())
    if isinstance(strategy, keras.distribution.ModelParallel) and num_classes \
            and num_classes % n:
        raise ConfigError(f"strategy: model_parallel shards the {num_classes} classes over "
                          f"{n} devices; the class count must be a multiple of {n}")
    if batch_size % n:
        raise ConfigError(f"batch_size: {batch_size} does not split over {n} devices")


def scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def fit_scope(strategy):
    """keras.distribution shards each batch as fit feeds it: it must be in effect for fit too
    (a tf.distribute model keeps its strategy by itself)."""
    if is_keras_distribution(strategy):
        return strategy.scope()
    return contextlib.nullcontext()


def replicas(strategy):
    """Input pipelines' replicas: tf.distribute's; keras.distribution takes the global batch."""
    if strategy is None or is_keras_distribution(strategy):
        return 1
    return strategy.num_replicas_in_sync
