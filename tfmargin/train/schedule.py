"""Learning-rate schedules of the recipes: piecewise constant (the paper: / 10 at given steps)
or cosine, both with an optional linear warm-up. `step` is the optimizer's update count
(0 for the first update), so `LR / 10 at 100k` means updates 100,000 onwards use lr / 10."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmargin")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """kind="piecewise": lr * factor ** #{b in boundaries : step >= b}.
    kind="cosine":    min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2, t = (step - warmup) /
                      (total_steps - warmup) clipped to [0, 1].
    Both: for step < warmup_steps, lr_after_warmup(step) * step / warmup_steps."""

    def __init__(self, kind, lr, total_steps=None, boundaries=(), factor=0.1, warmup_steps=0,
                 min_lr=0.0):
        if kind not in ("piecewise", "cosine"):
            raise ValueError(f"schedule kind must be 'piecewise' or 'cosine', got {kind!r}")
        if kind == "cosine" and not total_steps:
            raise ValueError("the cosine schedule needs total_steps")
        self.kind, self.lr, self.total_steps = kind, float(lr), total_steps
        self.boundaries, self.factor = [int(b) for b in boundaries], float(factor)
        self.warmup_steps, self.min_lr = int(warmup_steps), float(min_lr)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.kind == "piecewise":
            drops = sum((ops.cast(step >= b, "float32") for b in self.boundaries),
                        ops.zeros_like(step))
            rate = self.lr * ops.power(self.factor, drops)
        else:
            span = max(self.total_steps - self.warmup_steps, 1)
            t = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            rate = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + ops.cos(math.pi * t))
        if self.warmup_steps:
            rate = rate * ops.minimum(step / self.warmup_steps, 1.0)
        return rate

    def get_config(self):
        return {"kind": self.kind, "lr": self.lr, "total_steps": self.total_steps,
                "boundaries": self.boundaries, "factor": self.factor,
                "warmup_steps": self.warmup_steps, "min_lr": self.min_lr}


def learning_rate(config):
    """The schedule a TrainConfig asks for."""
    return WarmupSchedule(config.lr_schedule, config.lr, total_steps=config.steps,
                          boundaries=config.lr_steps if config.lr_schedule == "piecewise" else (),
                          factor=config.lr_factor, warmup_steps=config.lr_warmup_steps,
                          min_lr=config.min_lr)

