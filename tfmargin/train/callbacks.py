"""Training callbacks beyond Keras' own: stopping on a NaN loss with advice, and keeping the
best-on-validation record on disk so a resumed run continues the model selection."""

import json
import math
import os

import keras
import numpy as np

from tfmargin.atomic import write_json
from tfmargin.errors import TfmarginError
from tfmargin.train.config import warmup_capable


class TrainingDiverged(TfmarginError, FloatingPointError):
    """The loss became NaN or inf; the message says at which step and what to try."""


def divergence_advice(config):
    tips = [f"lower the learning rate (--lr={config.lr:g} now)"]
    if not config.softmax_warmup_steps and warmup_capable(config):
        tips.append("a softmax warm-up (--softmax_warmup_steps=2000)")
    if not config.lr_warmup_steps:
        tips.append("a learning-rate warm-up (--lr_warmup_steps=1000)")
    tips.append("check that every label is in 0..num_classes-1")
    if config.precision != "float32":
        tips.append(f"--precision=float32 (now {config.precision})")
    return "try " + ", ".join(tips)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers why it stopped: `message` (None while the loss is
    finite) says at which step the loss went bad and what to try."""

    def __init__(self, advice, start_step=0, log=print):
        super().__init__()
        self.advice, self.start_step, self.log = advice, int(start_step), log
        self.message = None
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        loss = (logs or {}).get("loss")
        if loss is None or self.message is not None:
            return
        loss = float(np.asarray(loss))
        if not math.isfinite(loss):
            step = self.start_step + self._seen
            self.message = (f"training diverged: the loss is {loss} at step {step}; "
                            f"{self.advice}")
            self.log(self.message)
            self.model.stop_training = True


def restore_best(verification, path, backbone_path):
    """Hand a resumed run's verification callback the best so far from the record at `path`
    (when its backbone exists too); returns that step, or None."""
    if not (os.path.exists(path) and os.path.exists(backbone_path)):
        return None
    with open(path) as f:
        best = json.load(f)
    verification.best_accuracy = best["accuracy"]
    verification.best_step = best["step"]
    return best["step"]


class SelectionRecord(keras.callbacks.Callback):
    """Writes `path` (JSON: step, accuracy, set, backbone file) whenever the verification
    callback finds a new best, and hands a resumed run's callback the best so far so that a
    worse model never replaces the saved best."""

    def __init__(self, verification, path, backbone_path):
        super().__init__()
        self.verification, self.path, self.backbone_path = verification, path, backbone_path
        self._written = restore_best(verification, path, backbone_path)

    def best(self):
        v = self.verification
        if v.best_step is None:
            return None
        return {"step": int(v.best_step), "accuracy": float(v.best_accuracy),
                "set": v.select_on, "backbone": self.backbone_path}

    def _record(self):
        best = self.best()
        if best is not None and best["step"] != self._written:
            write_json(self.path, best)
            self._written = best["step"]

    def on_train_batch_end(self, batch, logs=None):
        self._record()

    def on_epoch_end(self, epoch, logs=None):
        self._record()
