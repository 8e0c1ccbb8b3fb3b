"""AdaDistillHead: AdaArcDistill (Boutros, Struc and Damer, "AdaDistill: Adaptive Knowledge
Distillation for Deep Face Recognition", ECCV 2024), the ArcFace variant of AdaDistill.

The class centers are not the teacher's classifier: they are built from the teacher's
embeddings of each class during training, and the student is trained with ArcFace against
them. Before each training step's logits, without gradient, for every sample i of class y_i
(s_i the student's and t_i the teacher's L2-normalised embedding, W_y the current center):

    alpha_i  = clip(cos(s_i, t_i), -1, 1)           how far the student is from the teacher
    lambda_i = clip(cos(W_yi, t_i), 1e-6, 1)         how close the teacher is to the center
    w_i      = clip(alpha_i * lambda_i, 1e-6, 1)
    W_yi    <- w_i * W_yi + (1 - w_i) * t_i          an EMA whose momentum is w_i

Early on (the student far from the teacher) w_i is small and the center follows the single
teacher embedding (sample-to-sample knowledge); as the student catches up it moves slowly and
averages the class (sample-to-center knowledge), with no hyper-parameter for the switch. The
logits are then ArcFace's, `scale * cos(theta_yi + m)` at the target, against the normalised
updated centers. This follows the authors' reference code (`AdaptiveAArcFace` in
fdbtrs/AdaDistill, utils/losses.py: the centers start as N(0, 0.01) and are never touched by
the optimiser) rather than a re-derivation; two details are ours and documented: a class that
occurs several times in a batch gets the update of its last occurrence (PyTorch leaves
duplicate index writes unordered), and past theta + m > pi the target keeps decreasing
(`tfmargin.margins.margin_target`), where the reference code's cos would rise again.

Called as `head([embeddings, labels, teacher_embeddings])`; it needs no teacher classifier, so
the teacher signal may come from any teacher on the student's own identities. The centers
update in training calls only; inference leaves them alone.
"""

import keras
from keras import ops

from tfmargin import margins
from tfmargin.heads import centers
from tfmargin.heads.partial_fc import PartialFC

LAMBDA_FLOOR = 1e-6


@keras.saving.register_keras_serializable(package="tfmargin")
class AdaDistillHead(PartialFC, keras.layers.Layer):
    """AdaArcDistill: ArcFace against class centers that follow the teacher's embeddings."""

    def __init__(self, num_classes, scale=64.0, margin=0.5, sample_rate=1.0, sample_shards=1,
                 sample_seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"{self.name}: num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.scale, self.margin = int(num_classes), float(scale), float(margin)
        self.arcface = margins.CombinedMargin(1.0, self.margin, 0.0)
        self.center_rows = None
        self.init_sampling(sample_rate, sample_shards, sample_seed)

    def build(self, input_shape):
        dim, teacher_dim = input_shape[0][-1], input_shape[2][-1]
        if teacher_dim is not None and dim is not None and teacher_dim != dim:
            raise ValueError(f"{self.name}: the student embeds into {dim} dimensions but the "
                             f"teacher into {teacher_dim}; AdaDistill needs one space")
        self.center_rows = centers.add_rows(
            self, dim, self.num_classes, initializer=keras.initializers.RandomNormal(stddev=0.01))

    def update_centers(self, inputs):
        """The EMA step above, applied to the center rows; returns the per-sample w_i."""
        embeddings, labels, teacher = inputs
        labels = margins.flat_labels(labels)
        s = ops.stop_gradient(margins.l2_normalize(ops.cast(embeddings, "float32")))
        t = ops.stop_gradient(margins.l2_normalize(ops.cast(teacher, "float32")))
        own = ops.take(self.center_rows, labels, axis=0)                     # (B, D)
        alpha = ops.clip(ops.sum(s * t, axis=-1), -1.0, 1.0)
        lam = ops.clip(margins.row_cosine(own, t), LAMBDA_FLOOR, 1.0)
        w = ops.clip(alpha * lam, LAMBDA_FLOOR, 1.0)[:, None]
        new = w * own + (1.0 - w) * t
        # every occurrence of a class writes its last occurrence's value: one defined result
        batch = ops.shape(labels)[0]
        position = ops.arange(batch)
        same = ops.equal(labels[:, None], labels[None, :])
        last = ops.max(ops.where(same, position[None, :], -1), axis=1)
        new = ops.take(new, last, axis=0)
        self.center_rows.assign(ops.scatter_update(self.center_rows, labels[:, None], new))
        return w[:, 0]

    def call(self, inputs, training=None):
        if training:
            self.update_centers(inputs)
        return self.head_logits(inputs, training=training)

    def logits_from_cosines(self, cos, inputs, margin_fraction=1.0, columns=None):
        """ArcFace logits from cosines to the (updated) centers; `margin_fraction` for
        warm-ups; `columns` each row's target column (Partial FC)."""
        columns = margins.flat_labels(inputs[1]) if columns is None else columns
        return self.arcface(cos, columns, self.scale, margin_fraction)

    def compute_output_shape(self, input_shape):
        return self.sampling_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "scale": self.scale,
                "margin": self.margin, **self.sampling_config()}
