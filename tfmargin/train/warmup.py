"""Softmax warm-up: a margin head that starts as a plain (margin-free) normalised softmax.

Small and from-scratch networks often fail to converge when a 0.5 rad margin is on from the
first step (DESIGN.md §4): every target logit starts far below the others. For the first
`warmup_steps` training steps the wrapper returns `scale * cos(theta)` for every class, then
the wrapped head's margin logits. The step counter is a non-trainable weight counted in the
layer itself (training calls only), so it is saved, restored by BackupAndRestore, and works
the same under TensorFlow and JAX.
"""

import keras
from keras import ops

from tfmargin.heads import angular


@keras.saving.register_keras_serializable(package="tfmargin")
class SoftmaxWarmup(keras.layers.Layer):
    """Wraps a head with `centers` and `scale` (MarginHead, MarginDistillationHead,
    AngularDistillationHead); called with the head's own inputs. A head's extra losses (the
    angular term) stay on during the warm-up; only the margin waits."""

    def __init__(self, head, warmup_steps, **kwargs):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("name", "softmax_warmup")
        super().__init__(**kwargs)
        if isinstance(head, dict):
            head = keras.saving.deserialize_keras_object(head)
        if not hasattr(head, "scale"):
            raise ValueError(f"{self.name}: head {head.name} has no margin to warm up")
        self.head = head
        self.warmup_steps = int(warmup_steps)
        self.step = None

    @property
    def OBJECTIVE(self):  # noqa: N802 (the heads' attribute, read by compile_loss)
        return getattr(self.head, "OBJECTIVE", "logits")

    @property
    def centers(self):
        """The wrapped head's class centers: a warmed-up teacher is still a teacher."""
        return self.head.centers

    def build(self, input_shape):
        if not self.head.built:  # a deserialised head arrives built
            self.head.build(input_shape)
        self.step = self.add_weight(shape=(), dtype="int32", initializer="zeros",
                                    trainable=False, name="step",
                                    aggregation="only_first_replica")

    def margin_on(self):
        return ops.greater_equal(self.step, self.warmup_steps)

    def call(self, inputs, training=None):
        margin_logits = self.head(inputs)
        plain = self.head.scale * angular.cosine_logits(inputs[0], self.head.centers)
        out = ops.where(self.margin_on(), margin_logits, plain)
        if training:
            self.step.assign(self.step + 1)
        return out

    def compute_output_shape(self, input_shape):
        return self.head.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "head": keras.saving.serialize_keras_object(self.head),
                "warmup_steps": self.warmup_steps}
