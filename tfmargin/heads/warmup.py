"""Softmax warm-up and margin ramp: a margin head that starts as a plain normalised softmax.

Why (measured, docs/training.md): a from-scratch network with a 0.5 rad margin switched on in
one step sits far from every center, so each target logit lands far below the others, the
loss jumps from ~5 to ~35 and the network can spend its whole budget there. The wrapper
returns `scale * cos(theta)` for every class for the first `warmup_steps` training steps,
then grows the margin linearly over `ramp_steps` steps (margin fraction k / ramp_steps at the
k-th step after the warm-up) to the wrapped head's full margin. With `ramp_steps=0` the
margin switches on at once, as before.

The cosines to the centers are computed once per call and handed to the head's
`logits_from_cosines`, so the wrapper costs no second (B x D x C) product. The step counter is
a non-trainable weight counted in the layer (training calls only): it is saved, restored by
BackupAndRestore, and behaves the same under TensorFlow and JAX.
"""

import keras
from keras import ops

from tfmargin import margins


@keras.saving.register_keras_serializable(package="tfmargin")
class SoftmaxWarmup(keras.layers.Layer):
    """Wraps a head with `centers`, `scale` and `logits_from_cosines` (MarginHead and its
    subclasses, MarginDistillationHead); called with the head's own inputs. The wrapper calls
    `logits_from_cosines`, never the head's `call`: a head keeps its whole objective there
    (the angular term is added in it, so it stays on during the warm-up; only the margin
    waits)."""

    def __init__(self, head, warmup_steps, ramp_steps=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("name", "softmax_warmup")
        super().__init__(**kwargs)
        if isinstance(head, dict):
            head = keras.saving.deserialize_keras_object(head)
        if not hasattr(head, "logits_from_cosines"):
            raise ValueError(f"{self.name}: head {head.name} cannot be warmed up (it has no "
                             "logits_from_cosines: its margin is not one of the heads' own)")
        if warmup_steps < 0 or ramp_steps < 0:
            raise ValueError(f"{self.name}: warmup_steps and ramp_steps must be >= 0, got "
                             f"{warmup_steps}, {ramp_steps}")
        self.head = head
        self.warmup_steps, self.ramp_steps = int(warmup_steps), int(ramp_steps)
        self.step = None

    @property
    def OBJECTIVE(self):  # noqa: N802 (the heads' attribute, read by compile_loss)
        return getattr(self.head, "OBJECTIVE", "logits")

    def __dir__(self):  # as CenterRows: Keras' saving must not read the (D, C) view
        return [name for name in super().__dir__() if name != "centers"]

    @property
    def centers(self):
        """The wrapped head's class centers: a warmed-up teacher is still a teacher."""
        return self.head.centers

    @property
    def center_rows(self):
        return self.head.center_rows

    @property
    def scale(self):
        return self.head.scale

    def build(self, input_shape):
        if not self.head.built:  # a deserialised head arrives built
            self.head.build(input_shape)
        self.step = self.add_weight(shape=(), dtype="int32", initializer="zeros",
                                    trainable=False, name="step",
                                    aggregation="only_first_replica")

    def margin_fraction(self, step=None):
        """The fraction of the full margin applied at `step` (default: the current one)."""
        step = ops.cast(self.step if step is None else step, "float32")
        after = step - float(self.warmup_steps)
        if not self.ramp_steps:
            return ops.cast(ops.greater_equal(after, 0.0), "float32")
        return ops.clip((after + 1.0) / float(self.ramp_steps), 0.0, 1.0)

    @property
    def samples(self):  # Partial FC: target-first logits (heads/partial_fc.py)
        return getattr(self.head, "samples", False)

    def call(self, inputs, training=None):
        if training and hasattr(self.head, "update_centers"):
            self.head.update_centers(inputs)  # centers that move with the data (AdaDistill)
        if hasattr(self.head, "head_logits"):  # every center-holding head: sampling included
            out = self.head.head_logits(inputs, self.margin_fraction(), training)
        else:
            cos = margins.cosine_to_rows(inputs[0], self.head.center_rows)
            out = self.head.logits_from_cosines(cos, inputs, self.margin_fraction())
        if training:
            self.step.assign(self.step + 1)
        return out

    def compute_output_shape(self, input_shape):
        return self.head.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "head": keras.saving.serialize_keras_object(self.head),
                "warmup_steps": self.warmup_steps, "ramp_steps": self.ramp_steps}
