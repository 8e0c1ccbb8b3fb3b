"""VerificationCallback: insightface-style verification during `model.fit`.

Every `every_n_steps` training steps (or, with every_n_steps=None, at the end of each epoch)
the embedding model is run on each verification set with flip-sum embeddings and 10-fold
accuracy. Results go to `callback.history`, into the epoch logs (so into
`model.fit(...).history`, e.g. `val_accuracy`), to TensorBoard when `log_dir` is given, and to
stdout. The weights with the best accuracy on the set named by `select_on` (a held-out
validation split; selecting on a test set overstates it) are kept in memory, optionally saved
to `best_path`, and restored when training ends.
"""

import os

import keras
import numpy as np

from tfmargin.atomic import atomic_path
from tfmargin.evaluate.sets import evaluate_sets, load_sets


class VerificationCallback(keras.callbacks.Callback):
    """Args:
      bins: verification sets: comma-separated .bin paths, a list of them, or a dict
        {name: path or (images uint8 (2N, H, W, 3), issame (N,))}; loaded once, here.
      every_n_steps: evaluate every this many training steps; None: at each epoch end only.
      select_on: name of the set whose accuracy picks the best weights (None: keep none).
      embedding_model: model mapping images to embeddings; default the model being trained
        (it must then take one image input). Pass the backbone when training a head on top.
      batch_size, flip, folds: embedding batch size, flip-sum, number of folds.
      log_dir: write scalars `<set>/accuracy`, `<set>/accuracy_std`, `<set>/tar_at_far_<far>`
        under `<log_dir>/verification` for TensorBoard.
      best_path: where to save the best embedding model (.keras) or its weights (.weights.h5).
      restore_best: at the end of training, load the best weights back into the model.
      verbose: print one line per evaluation.
      sync: called before each evaluation, e.g. to copy the trained weights into an
        embedding_model that is a separate copy of the backbone.
    """

    def __init__(self, bins, every_n_steps=None, select_on=None, embedding_model=None,
                 batch_size=128, flip=True, folds=10, log_dir=None, best_path=None,
                 restore_best=True, verbose=1, sync=None):
        super().__init__()
        if every_n_steps is not None and int(every_n_steps) < 1:
            raise ValueError(f"VerificationCallback: every_n_steps must be >= 1 or None, got "
                             f"{every_n_steps}")
        self.sets = load_sets(bins)
        if select_on is not None and select_on not in self.sets:
            raise ValueError(f"VerificationCallback: select_on={select_on!r} is not one of the "
                             f"sets {sorted(self.sets)}")
        if best_path is not None and not str(best_path).endswith((".keras", ".weights.h5")):
            raise ValueError(f"VerificationCallback: best_path {best_path} must end with .keras "
                             "or .weights.h5")
        self.every_n_steps = None if every_n_steps is None else int(every_n_steps)
        self.select_on = select_on
        self.embedding_model = embedding_model
        self.batch_size, self.flip, self.folds = batch_size, flip, folds
        self.log_dir, self.best_path = log_dir, best_path
        self.restore_best, self.verbose = restore_best, verbose
        self.sync = sync
        self.history = []  # [{"step": s, "epoch": e, "results": {name: VerificationResult}}]
        self.best_accuracy = -np.inf
        self.best_step = None
        self.best_weights = None
        self._writer = None
        self._latest = None
        self._step = 0
        self._last_eval_step = None

    # -- bookkeeping ------------------------------------------------------------------------

    def _sync(self):
        # Under JAX, fit keeps the weights outside the variables between epochs.
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()
        if self.sync is not None:
            self.sync()

    def on_train_begin(self, logs=None):
        self._sync()
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        self._step = int(keras.ops.convert_to_numpy(iterations)) if iterations is not None else 0
        self._epoch_start = self._step
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._step

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of the execution (steps_per_execution may exceed 1).
        previous = self._step
        self._step = self._epoch_start + batch + 1
        n = self.every_n_steps
        if n is not None and self._step // n > previous // n:
            self._evaluate()

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_steps is None and self._last_eval_step != self._step:
            self._evaluate()
        if logs is not None and self._latest is not None:
            logs.update(self._latest)

    def on_train_end(self, logs=None):
        if self.restore_best and self.best_weights is not None:
            self._sync()
            self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"[verification] restored the weights of step {self.best_step} "
                      f"({self.select_on} accuracy {100 * self.best_accuracy:.2f}%)", flush=True)
        if self._writer is not None:
            self._writer.flush()

    # -- the work ---------------------------------------------------------------------------

    def _evaluate(self):
        self._sync()
        model = self.embedding_model if self.embedding_model is not None else self.model
        if self.embedding_model is None and len(getattr(model, "inputs", None) or [1]) != 1:
            raise ValueError("VerificationCallback: the model being trained has several inputs; "
                             "pass embedding_model= (the backbone)")
        results = evaluate_sets(model, self.sets, batch_size=self.batch_size, flip=self.flip,
                                folds=self.folds)
        self._last_eval_step = self._step
        self.history.append({"step": self._step, "epoch": self._epoch, "results": results})
        self._latest = {}
        for name, r in results.items():
            self._latest[f"{name}_accuracy"] = r.accuracy
            self._latest[f"{name}_accuracy_std"] = r.accuracy_std
            for far, tar in r.tar_at_far.items():
                self._latest[f"{name}_tar_at_far_{far:g}"] = tar
        improved = False
        if self.select_on is not None and results[self.select_on].accuracy > self.best_accuracy:
            improved = True
            self.best_accuracy = results[self.select_on].accuracy
            self.best_step = self._step
            self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
            if self.best_path is not None:
                self._save_best(model)
        self._log_tensorboard(results)
        if self.verbose:
            parts = [f"{name} {100 * r.accuracy:.2f}±{100 * r.accuracy_std:.2f}"
                     for name, r in results.items()]
            print(f"[verification] step {self._step}: " + ", ".join(parts)
                  + (" (best)" if improved else ""), flush=True)

    def _save_best(self, model):
        path = str(self.best_path)
        suffix = ".weights.h5" if path.endswith(".weights.h5") else ".keras"
        with atomic_path(path, suffix=suffix) as tmp:  # Keras checks the suffix
            if suffix == ".keras":
                model.save(tmp)
            else:
                model.save_weights(tmp)

    def _log_tensorboard(self, results):
        if self.log_dir is None:
            return
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir,
                                                                      "verification"))
        # tf.summary.scalar lives in the tensorboard package, which may not be installed;
        # tf.summary.write with the scalar plugin's metadata writes the same event.
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR)

        def scalar(tag, value):
            tf.summary.write(tag, tf.constant(value, tf.float32), step=self._step,
                             metadata=metadata)

        with self._writer.as_default():
            for name, r in results.items():
                scalar(f"{name}/accuracy", r.accuracy)
                scalar(f"{name}/accuracy_std", r.accuracy_std)
                for far, tar in r.tar_at_far.items():
                    scalar(f"{name}/tar_at_far_{far:g}", tar)
        self._writer.flush()
