"""--strategy=multi_worker: TensorFlow's MultiWorkerMirroredStrategy, driven by our own loop.

Keras 3's `fit` cannot run under MultiWorkerMirroredStrategy across workers (strategy.py says
why), so `fit` here drives the same compiled model the way Keras' would, with nothing of
Keras' trainer replaced but its outer loop: each step runs the model's own `train_step`
(forward, compiled loss, gradients, optimizer; the optimizer all-reduces the gradients across
workers) inside `strategy.run`, the step's logs are averaged over the replicas in the step
(Keras' own reduce of them fails), and the callbacks `fit` would call are called in the same
order: BackupAndRestore, CSVLogger, the verification callback and StopOnNaN behave as under
`fit`. Decisions every worker must share are agreed on over all of them: the epoch a run
resumes at, and stopping (a callback may stop training on the chief only).

Files: only the chief writes (TensorFlow's convention for multi-worker runs), and every worker
restores from the chief's backup when a run resumes, so `output_dir` must be one directory all
workers see (a shared POSIX file system such as NFS; on one machine, any directory). User
callbacks run on every worker.
"""

import keras


def fit(model, dataset, *, strategy, epochs, steps_per_epoch, initial_epoch=0, callbacks=(),
        verbose=0):
    """Train `model` (compiled under `strategy.scope()`) on `dataset` (from
    `strategy.distribute_datasets_from_function`) for epochs initial_epoch..epochs-1 of
    `steps_per_epoch` steps, calling `callbacks` as Keras' fit does. Returns the History."""
    import tensorflow as tf

    history = keras.callbacks.History()
    cbs = keras.callbacks.CallbackList(list(callbacks) + [history], add_history=False,
                                       add_progbar=bool(verbose), model=model, verbose=verbose,
                                       epochs=epochs, steps=steps_per_epoch)
    if not hasattr(dataset, "element_spec") or not hasattr(dataset, "__iter__"):
        raise TypeError(f"multi_worker trains on a tf.distribute dataset, not a "
                        f"{type(dataset).__name__}")
    with strategy.scope():
        _build_compiled(model, dataset.element_spec)
    step = _step_function(model, strategy, tf)
    agree = _agreement(strategy, tf)
    # Every worker must start at the same epoch: one that cannot see the chief's backup
    # (output_dir not shared) would otherwise train other weights, and hang at the end.
    low, high = agree(initial_epoch)
    if low != high:
        from tfmargin.train.config import ConfigError

        raise ConfigError(f"output_dir: the workers resume at different epochs ({low} and "
                          f"{high}); it must be one directory that every worker sees")
    iterator = iter(dataset)
    model.stop_training = False
    cbs.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        cbs.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            cbs.on_train_batch_begin(batch)
            logs = {k: float(v) for k, v in step(iterator).items()}
            telling_others(agree, cbs.on_train_batch_end, batch, logs)
            if agreed_stop(model, agree):
                break
        epoch_logs = dict(logs)
        telling_others(agree, cbs.on_epoch_end, epoch, epoch_logs)
        logs = epoch_logs
        if agreed_stop(model, agree):
            break
    cbs.on_train_end(logs)
    return history


FAILED = 2  # agreed instead of a stop flag by a worker whose callback raised


def telling_others(agree, hook, *args):
    """Run a callback hook; if it raises (a chief-only write: the backup, the history, the best
    model), first tell the other workers, who are about to agree on whether to stop and would
    otherwise wait for this one for ever."""
    try:
        hook(*args)
    except BaseException:
        agree(FAILED)
        raise


def agreed_stop(model, agree, who="multi_worker", peer="worker"):
    """A callback on one worker (the chief's validation, a user's EarlyStopping) may stop
    training: all stop then, or the others would wait for it in the next step."""
    model.stop_training = bool(agreed(agree, int(model.stop_training), who, peer))
    return model.stop_training


def agreed(agree, flag, who="multi_worker", peer="worker"):
    """The largest `flag` over every worker; an error when one of them failed."""
    decision = agree(flag)[1]
    if decision >= FAILED:
        raise RuntimeError(f"{who}: a callback failed on another {peer} (its log says "
                           "why); this one stops with it")
    return decision


def _agreement(strategy, tf):
    """agree(n) -> (min, max) of an integer over every worker."""

    @tf.function
    def gather(value):
        def replica(v):  # ReduceOp has no MIN / MAX: every value, then both ends
            every = tf.distribute.get_replica_context().all_gather(tf.reshape(v, [1]), axis=0)
            return tf.reduce_min(every), tf.reduce_max(every)

        low, high = strategy.run(replica, args=(value,))
        return (strategy.experimental_local_results(low)[0],
                strategy.experimental_local_results(high)[0])

    def agree(n):
        low, high = gather(tf.constant(int(n), tf.int64))
        return int(low), int(high)

    return agree


def _step_function(model, strategy, tf):
    mean = tf.distribute.ReduceOp.MEAN
    # Keras 3's BatchNormalization updates its moving statistics from each worker's own batch
    # and nothing brings them together (Keras 2 read their mean over the replicas): they are
    # averaged over the workers after every step, so that every worker holds the same model
    statistics = [v for v in model.non_trainable_variables
                  if v.name in ("moving_mean", "moving_variance")]

    def one_step(data):
        logs = model.train_step(data)
        replica = tf.distribute.get_replica_context()
        # one collective for the logs (scalars: Keras' own reduce takes axis 0 and fails on
        # them) and the statistics together
        logs = {k: tf.cast(v, "float32") for k, v in logs.items()}  # one pack, one dtype
        logs, averaged = replica.all_reduce(mean, (logs, [tf.identity(v.value)
                                                          for v in statistics]))
        for v, value in zip(statistics, averaged):
            v.assign(value)
        return logs

    @tf.function
    def step(iterator):
        outputs = strategy.run(one_step, args=(next(iterator),))
        return {k: strategy.experimental_local_results(v)[0] for k, v in outputs.items()}

    return step


def _build_compiled(model, element_spec):
    """Create the compiled loss's and metrics' variables and the optimizer's now, in the
    strategy's cross-replica scope: inside the distributed step they could not be created.
    They are built from a two-row batch of placeholders shaped like the stream's elements
    (nothing is read from the stream, so the first training batch stays the first); the
    metrics are reset afterwards."""
    import tensorflow as tf

    def placeholder(spec):
        if not hasattr(spec, "shape"):  # a PerReplicaSpec: its replicas' specs are equal
            spec = spec._value_specs[0]
        shape = [2 if d is None else d for d in spec.shape.as_list()]
        shape[0] = 2
        return tf.zeros(shape, spec.dtype) if spec.dtype.is_integer else tf.ones(shape,
                                                                                   spec.dtype)

    x, y = tf.nest.map_structure(placeholder, element_spec)[:2]
    y_pred = model(x, training=False)
    model.compute_loss(x, y, y_pred)
    model.compute_metrics(x, y, y_pred, sample_weight=None)
    model.reset_metrics()
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def local_copy(model):
    """`model`'s architecture with variables of its own outside any tf.distribute strategy:
    inference on one worker (Keras' predict under MultiWorkerMirroredStrategy is a collective
    that every worker would have to join). Copy the weights in with set_weights."""
    copy = keras.models.clone_model(model)  # called outside the strategy's scope
    copy_weights(model, copy)
    return copy


def copy_weights(source, target):
    target.set_weights(source.get_weights())


class ChiefBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore for one or several workers: every worker restores from `backup_dir`,
    only the chief (`writer=True`) writes it. A backup is written whole into `backup_dir.tmp`
    that then takes `backup_dir`'s place (atomic.replace_directory: one atomic exchange on
    Linux's local file systems; on NFS two renames, and a kill between them is undone by
    atomic.recover_directory before the next run reads the backup), so a resumed run never
    finds new weights beside an old epoch. Same files as Keras' BackupAndRestore: older runs'
    backups resume. Construct it with delete_checkpoint=False and remove the backup only once
    the run's final models are saved."""

    def __init__(self, backup_dir, writer=True, scratch=None, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.writer, self.scratch = writer, scratch

    def _save_model(self):
        # a non-writer JAX host saves too (strategy.spans_hosts), to `scratch`
        target = self.backup_dir if self.writer else self.scratch
        if target is None:
            return
        import os

        from tfmargin.atomic import atomic_directory, write_json

        with atomic_directory(target, staging=target + ".tmp", create=True) as stage:
            self.model.save_weights(os.path.join(stage, os.path.basename(self._weights_path)))
            write_json(os.path.join(stage, os.path.basename(self._training_metadata_path)),
                       {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def on_train_end(self, logs=None):
        if self.writer:
            super().on_train_end(logs)

    @staticmethod
    def remove(backup_dir):
        """The finished run's backup, once its models are saved."""
        import shutil

        shutil.rmtree(backup_dir, ignore_errors=True)
        shutil.rmtree(backup_dir + ".tmp", ignore_errors=True)
