"""Partial FC for every head that holds class centers: `sample_rate` < 1 computes each training
step's logits against the batch's own classes plus a uniform share of the others only (An et
al. 2022; insightface's PartialFC), so a step costs sample_rate of the (B x D x C) product and
of the (B x C) logits. At sample_rate 1 a head is exactly what it was.

A sampling head returns "target-first" logits (B, 1 + K): each row's target logit in column 0
and the sampled others after it (margins.target_first). Train it with `SampledSoftmaxLoss` (what
`compile_loss` gives it), whose value is the cross-entropy over the sampled classes; outside
training (validation, evaluate) K is every class, so the loss is the full one.
"""

import keras
from keras import ops

from tfmargin import margins
from tfmargin.heads.centers import CenterRows


@keras.saving.register_keras_serializable(package="tfmargin")
class SampledSoftmaxLoss(keras.losses.Loss):
    """Cross-entropy of target-first logits: -log softmax(logits)[:, 0]; y_true is not read
    (the head has already put each row's target in column 0)."""

    def __init__(self, name="sampled_softmax", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return -ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)[:, 0]


@keras.saving.register_keras_serializable(package="tfmargin")
def target_first_accuracy(y_true, y_pred):
    """Top-1 accuracy of target-first logits: the target outscores every sampled class."""
    return ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), 0), "float32")


def sampled_accuracy():
    return keras.metrics.MeanMetricWrapper(target_first_accuracy, name="accuracy")


class PartialFC(CenterRows):
    """Mixin of the center-holding heads (MarginHead, MarginDistillationHead, AdaDistillHead):
    `head_logits` computes the cosines to all center rows or to a sample of them (heads/centers.py)
    and hands them to the head's `logits_from_cosines(cos, inputs, margin_fraction, columns)`,
    `columns` saying where each row's target sits among them."""

    def init_sampling(self, sample_rate=1.0, sample_shards=1, sample_seed=None):
        if not 0.0 < float(sample_rate) <= 1.0:
            raise ValueError(f"{self.name}: sample_rate must be in (0, 1], got {sample_rate}")
        if int(sample_shards) < 1 or self.num_classes % int(sample_shards):
            raise ValueError(f"{self.name}: sample_shards ({sample_shards}) must divide "
                             f"num_classes ({self.num_classes})")
        self.sample_rate, self.sample_shards = float(sample_rate), int(sample_shards)
        self.sample_seed = sample_seed
        self.seed_generator = (keras.random.SeedGenerator(sample_seed, name="sample_seed")
                               if self.samples else None)

    @property
    def samples(self):
        return self.sample_rate < 1.0

    def num_sampled(self, batch=None):
        """Classes a training step computes logits for (every class when not sampling)."""
        if not self.samples:
            return self.num_classes
        return self.sample_shards * margins.per_shard(self.num_classes, self.sample_rate,
                                                       self.sample_shards, batch)

    def sample(self, labels, batch=None):
        """(index of the sampled classes (K,), each row's column among them (B,))."""
        return margins.sample_classes(labels, self.num_classes, self.num_sampled(batch),
                                      self.seed_generator, self.sample_shards)

    def head_logits(self, inputs, margin_fraction=1.0, training=None):
        embeddings, labels = inputs[0], margins.flat_labels(inputs[1])
        if not self.samples:
            cos = margins.cosine_to_rows(embeddings, self.center_rows)
            return self.logits_from_cosines(cos, inputs, margin_fraction)
        if training:
            batch = embeddings.shape[0]  # None when TensorFlow traces an unknown batch size
            index, columns = self.sample(labels, ops.shape(labels)[0] if batch is None
                                         else batch)
            # whole rows: under TensorFlow the centers' gradient is the K rows (IndexedSlices)
            cos = margins.cosine_to_rows(embeddings, ops.take(self.center_rows, index, axis=0))
        else:  # validation and evaluation: every class
            columns = labels
            cos = margins.cosine_to_rows(embeddings, self.center_rows)
        logits = self.logits_from_cosines(cos, inputs, margin_fraction, columns=columns)
        return margins.target_first(logits, columns)

    def sampling_output_shape(self, input_shape):
        batch = input_shape[0][0]
        return (batch, None) if self.samples else (batch, self.num_classes)

    def sampling_config(self):
        return {"sample_rate": self.sample_rate, "sample_shards": self.sample_shards,
                "sample_seed": self.sample_seed, **self.center_config()}
