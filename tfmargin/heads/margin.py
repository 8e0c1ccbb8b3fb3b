"""MarginHead: the combined margin softmax head (ArcFace, CosFace, SphereFace)."""

import keras
import numpy as np

from tfmargin import margins
from tfmargin.heads import centers
from tfmargin.heads.partial_fc import PartialFC


@keras.saving.register_keras_serializable(package="tfmargin")
class MarginHead(PartialFC, keras.layers.Layer):
    """Classifier logits with a combined angular margin on the target class.

    Called as `head([embeddings, labels])`, returns float32 logits (batch, num_classes):
    target `scale * (cos(m1*theta + m2) - m3)`, others `scale * cos(theta)`, theta the angle
    between the normalised embedding and the normalised class center. ArcFace is m2 (0.5),
    CosFace m3 (0.35), SphereFace m1 (4). Train with sparse categorical cross-entropy on the
    logits (`from_logits=True`). At inference use the backbone alone: the margin needs labels.

    The head computes in float32 whatever the global mixed-precision policy: s*cos overflows
    float16 and bfloat16 rounds cosines too coarsely for a 0.5 rad margin to register.

    `sample_rate` < 1: Partial FC (heads/partial_fc.py); training steps compute logits for the
    batch's classes and a uniform sample of the others, returned target-first (B, 1 + K).

    The centers are held as (C, D) rows in `center_rows` (heads/centers.py); `centers` reads
    them as (D, C), `assign_centers` sets them from (D, C), as `initial_centers` is given.
    """

    def __init__(self, num_classes, scale=64.0, m1=1.0, m2=0.5, m3=0.0,
                 center_initializer="random_normal", initial_centers=None, sample_rate=1.0,
                 sample_shards=1, sample_seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"{self.name}: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.scale, self.m1, self.m2, self.m3 = float(scale), float(m1), float(m2), float(m3)
        self.center_initializer = keras.initializers.get(
            {"class_name": "RandomNormal", "config": {"stddev": 0.01}}
            if center_initializer == "random_normal" else center_initializer)
        self.margin = margins.CombinedMargin(self.m1, self.m2, self.m3)
        # (D, C) starting values, e.g. a teacher's centers: assigned at build, never serialised
        # (the weight carries them from then on)
        self._initial_centers = None if initial_centers is None else np.asarray(
            initial_centers, "float32")
        if self._initial_centers is not None and (
                self._initial_centers.ndim != 2 or self._initial_centers.shape[1] != self.num_classes):
            raise ValueError(f"{self.name}: initial_centers must be (embedding_dim, "
                             f"{self.num_classes}), got shape {self._initial_centers.shape}")
        self.center_rows = None
        self.init_sampling(sample_rate, sample_shards, sample_seed)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        initial, self._initial_centers = self._initial_centers, None
        if initial is not None and initial.shape[0] != dim:
            raise ValueError(f"{self.name}: initial_centers are {initial.shape[0]}-d, the "
                             f"embeddings {dim}-d")
        self.center_rows = centers.add_rows(self, dim, self.num_classes, initial,
                                            self.center_initializer, trainable=True)

    def call(self, inputs, training=None):
        return self.head_logits(inputs, training=training)

    def logits_from_cosines(self, cos, inputs, margin_fraction=1.0, columns=None):
        """The logits from already computed cosines (B, C) to the centers. `margin_fraction`
        in [0, 1] scales the margin (0: plain normalised softmax), for warm-ups; `columns`:
        each row's target column in `cos` (default: its label; Partial FC gives others)."""
        columns = margins.flat_labels(inputs[1]) if columns is None else columns
        return self.margin(cos, columns, self.scale, margin_fraction)

    def compute_output_shape(self, input_shape):
        return self.sampling_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "scale": self.scale,
                "m1": self.m1, "m2": self.m2, "m3": self.m3,
                "center_initializer": keras.initializers.serialize(self.center_initializer),
                **self.sampling_config()}


def ArcFace(num_classes, scale=64.0, margin=0.5, **kwargs):
    """Additive angular margin (Deng et al. 2019): target scale*cos(theta + margin)."""
    return MarginHead(num_classes, scale=scale, m1=1.0, m2=margin, m3=0.0, **kwargs)


def CosFace(num_classes, scale=64.0, margin=0.35, **kwargs):
    """Additive cosine margin (Wang et al. 2018): target scale*(cos(theta) - margin)."""
    return MarginHead(num_classes, scale=scale, m1=1.0, m2=0.0, m3=margin, **kwargs)


def SphereFace(num_classes, scale=64.0, margin=4.0, **kwargs):
    """Multiplicative angular margin (Liu et al. 2017) on normalised features: cos(m*theta)."""
    return MarginHead(num_classes, scale=scale, m1=margin, m2=0.0, m3=0.0, **kwargs)
