"""--strategy=multi_worker: TensorFlow's MultiWorkerMirroredStrategy, driven by our own loop.

Keras 3's `fit` cannot run under MultiWorkerMirroredStrategy across workers (strategy.py says
why), so `fit` here drives the same compiled model the way Keras' would, with nothing of
Keras' trainer replaced but its outer loop: each step runs the model's own `train_step`
(forward, compiled loss, gradients, optimizer; the optimizer all-reduces the gradients across
workers) inside `strategy.run`, the step's logs are averaged over the replicas with
`strategy.reduce(MEAN, axis=None)` (the reduce Keras gets wrong), and the callbacks `fit` would
call are called in the same order: BackupAndRestore, CSVLogger, the verification callback and
StopOnNaN behave as under `fit`.

Files: only the chief writes (TensorFlow's convention for multi-worker runs), and every worker
restores from the chief's backup when a run resumes, so `output_dir` must be one directory all
workers see (a shared file system; on one machine, any directory).
"""

import keras


def is_chief(strategy):
    """The worker that writes the run's files: the `chief` task, or worker 0 without one."""
    return strategy is None or bool(strategy.extended.should_checkpoint)


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
    with strategy.scope():
        _build_compiled(model, dataset.element_spec)
    step = _step_function(model, strategy, tf)
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
            cbs.on_train_batch_end(batch, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        cbs.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return history


def _step_function(model, strategy, tf):
    mean = tf.distribute.ReduceOp.MEAN
    # Keras 3's BatchNormalization updates its moving statistics from each worker's own batch
    # and nothing brings them together (Keras 2 read their mean across replicas): averaged
    # here after every step, so that all workers hold the same model, whose statistics are
    # the moving average of the global batch's
    statistics = [v for v in model.non_trainable_variables
                  if v.name in ("moving_mean", "moving_variance")]

    def one_step(data):
        logs = model.train_step(data)
        replica = tf.distribute.get_replica_context()
        for v in statistics:
            v.assign(replica.all_reduce(mean, tf.identity(v.value)))
        return logs

    @tf.function
    def step(iterator):
        outputs = strategy.run(one_step, args=(next(iterator),))
        # scalar logs: axis=None (Keras' own reduce uses axis=0 and fails on scalars)
        return {k: strategy.reduce(mean, v, axis=None) for k, v in outputs.items()}

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
    """BackupAndRestore for several workers: every worker restores from `backup_dir`, only
    the chief (`writer=True`) writes and removes it. A write is two renames of complete files
    (weights, then the epoch), so a worker killed while the chief writes never leaves half a
    file to restore from."""

    def __init__(self, backup_dir, writer=True, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.writer = writer

    def _save_model(self):
        if not self.writer:
            return
        from tfmargin.atomic import atomic_path, write_json

        with atomic_path(self._weights_path, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        write_json(self._training_metadata_path,
                   {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def on_train_end(self, logs=None):
        if self.writer:
            super().on_train_end(logs)

