"""MarginDistillationHead (Svitov & Alyamkin 2020): frozen teacher centers, per-sample margins."""

import keras
from keras import ops

from tfmargin import margins
from tfmargin.heads import centers as frozen
from tfmargin.heads.partial_fc import PartialFC


@keras.saving.register_keras_serializable(package="tfmargin")
class MarginDistillationHead(PartialFC, keras.layers.Layer):
    """ArcFace logits against the teacher's frozen class centers, with a per-sample margin.

    Called as `head([embeddings, labels, teacher_embeddings])`. For sample i with teacher
    embedding t_i and class y_i (docs/method.md):

        cos_t_i = <t_i/|t_i|, W_yi/|W_yi|>
        m_i     = (m_max - m_min) / D_max * cos_t_i + m_min
        logits  = scale * cos(theta_yi + m_i) at the target, scale * cos(theta_j) elsewhere

    The margin grows with the teacher's confidence: samples the teacher put close to their
    center must be held just as close by the student. `d_max="batch"` uses the largest cos_t in
    the batch (the paper, per replica); a float uses a fixed dataset-level constant. The paper
    does not clip, so m_i < m_min when cos_t_i < 0; `clip=True` clips to [m_min, m_max]. If every
    teacher cosine of a batch is <= 0 (a broken teacher) D_max is floored at 1e-6, which makes
    those margins very negative and their loss ~0 rather than NaN. No gradient flows through m_i.

    `centers` (embedding_dim, num_classes) is held as a non-trainable weight of (C, D) rows
    (heads/centers.py): saved with the model, never changed by training. Train with sparse
    categorical cross-entropy on the logits.
    `sample_rate` < 1: Partial FC (heads/partial_fc.py); the margins are the same (they read
    each sample's own center), only the negatives are sampled.
    """

    D_MAX_FLOOR = 1e-6

    def __init__(self, centers=None, scale=64.0, m_max=0.5, m_min=0.2, d_max="batch", clip=False,
                 num_classes=None, embedding_dim=None, sample_rate=1.0, sample_shards=1,
                 sample_seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        centers, self.num_classes, self.embedding_dim = frozen.resolve(
            self.name, centers, num_classes, embedding_dim)
        if d_max != "batch" and not (isinstance(d_max, (int, float)) and d_max > 0):
            raise ValueError(f"{self.name}: d_max must be 'batch' or a positive number, got {d_max!r}")
        if m_max < m_min:
            raise ValueError(f"{self.name}: m_max ({m_max}) must be >= m_min ({m_min})")
        self.scale, self.m_max, self.m_min = float(scale), float(m_max), float(m_min)
        self.d_max = d_max if d_max == "batch" else float(d_max)
        self.clip = bool(clip)
        self._initial_centers = centers
        self.center_rows = None
        self.init_sampling(sample_rate, sample_shards, sample_seed)

    def build(self, input_shape):
        frozen.check_dims(self.name, self.embedding_dim, student=input_shape[0][-1],
                          teacher=input_shape[2][-1])
        self.center_rows = frozen.add_frozen(self, self._initial_centers, self.embedding_dim,
                                             self.num_classes)
        self._initial_centers = None  # the weight holds them now; free the host copy

    def margins(self, teacher_embeddings, labels):
        """Per-sample margins m_i, shape (batch,)."""
        if self.center_rows is None:
            raise ValueError(f"{self.name}: call or build the head before asking for margins")
        labels = margins.flat_labels(labels)
        own_centers = ops.take(self.center_rows, labels, axis=0)
        cos_t = margins.row_cosine(ops.cast(teacher_embeddings, "float32"), own_centers)
        return margins.teacher_margins(cos_t, self.m_max, self.m_min, self.d_max, self.clip,
                                       floor=self.D_MAX_FLOOR)

    def call(self, inputs, training=None):
        return self.head_logits(inputs, training=training)

    def logits_from_cosines(self, cos, inputs, margin_fraction=1.0, columns=None):
        """The logits from already computed cosines (B, C); `margin_fraction` scales every
        per-sample margin (0: plain normalised softmax), for warm-ups; `columns`: each row's
        target column in `cos` (default its label; Partial FC's sampled columns otherwise)."""
        _, labels, teacher = inputs
        labels = margins.flat_labels(labels)
        return margins.apply_margin(cos, labels if columns is None else columns, self.scale,
                                    m2=self.margins(teacher, labels) * margin_fraction)

    def compute_output_shape(self, input_shape):
        return self.sampling_output_shape(input_shape)

    def get_config(self):
        # The centers travel as the layer's weight (in the .keras file), not in the config.
        return {**super().get_config(), "scale": self.scale, "m_max": self.m_max,
                "m_min": self.m_min, "d_max": self.d_max, "clip": self.clip,
                "num_classes": self.num_classes, "embedding_dim": self.embedding_dim,
                **self.sampling_config()}
