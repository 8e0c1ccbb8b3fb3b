"""Distillation losses of the baselines MarginDistillation is compared with (docs/method.md).

Pure keras.ops functions (TF and JAX), plus Keras `Loss` classes where the loss fits the
(y_true, y_pred) contract. The baselines that also need labels or class centers are layers in
`tfmargin.heads.baselines`, built on these functions.
"""

import keras
from keras import ops

from tfmargin.margins import COS_EPS, l2_normalize, row_cosine

DISTANCES = ("l2", "cos")


def cosine_distillation(student, teacher):
    """mean_i (1 - cos(s_i, t_i)): the angular (ShrinkTeaNet) and cosine embedding term."""
    return ops.mean(1.0 - row_cosine(student, teacher))


def l2_distillation(student, teacher):
    """mean_i |s_i - t_i|^2 on the raw embeddings: the student copies the teacher's vectors,
    norms included (the teacher's norm carries its confidence)."""
    return ops.mean(ops.sum(ops.square(student - teacher), axis=-1))


def embedding_distillation(student, teacher, distance="cos"):
    """Embedding distillation alone, no classifier: `distance` is "cos" or "l2"."""
    if distance == "cos":
        return cosine_distillation(student, teacher)
    if distance == "l2":
        return l2_distillation(student, teacher)
    raise ValueError(f"distance must be 'cos' or 'l2', got {distance!r}")


def kd_divergence(teacher_logits, student_logits, temperature):
    """T^2 * mean_i KL(softmax(z_t/T) || softmax(z_s/T)) (Hinton et al. 2015).

    The T^2 keeps the soft term's gradients on the scale of the hard term's as T changes."""
    log_p_t = ops.log_softmax(teacher_logits / temperature, axis=-1)
    log_p_s = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    return temperature ** 2 * ops.mean(kl)


def pairwise_distances(x, distance):
    """(B, D) -> (B, B) distances between the L2-normalised rows of x.

    "l2": squared Euclidean distance, 2 - 2cos; "cos": the angle, arccos(cos)."""
    x = l2_normalize(x)
    cos = ops.matmul(x, ops.transpose(x))
    if distance == "l2":
        return ops.maximum(2.0 - 2.0 * cos, 0.0)
    if distance == "cos":
        return ops.arccos(ops.clip(cos, -1.0 + COS_EPS, 1.0 - COS_EPS))
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def semi_hard_negatives(dist, labels):
    """For each (anchor a, positive p), the index of the negative used by the triplet loss.

    FaceNet's semi-hard rule as TensorFlow Addons implements it: the closest negative that is
    farther from the anchor than the positive; where there is none, the farthest negative.
    Returns (negative index (B, B) int32, valid pair mask (B, B) bool): a pair is valid when
    p != a has the anchor's label and the anchor has at least one negative.
    """
    dist = ops.stop_gradient(dist)
    same = ops.equal(labels[:, None], labels[None, :])
    batch = ops.shape(labels)[0]
    positive = ops.logical_and(same, ops.logical_not(ops.eye(batch, dtype="bool")))
    negative = ops.logical_not(same)
    big = ops.max(dist) + 1.0
    # [a, p, n]: n is a negative of a and d(a, n) > d(a, p).
    farther = ops.logical_and(negative[:, None, :], dist[:, None, :] > dist[:, :, None])
    semi = ops.argmin(ops.where(farther, dist[:, None, :], big), axis=2)
    hardest_easy = ops.argmax(ops.where(negative, dist, -1.0), axis=1)
    index = ops.where(ops.any(farther, axis=2), semi, hardest_easy[:, None])
    valid = ops.logical_and(positive, ops.any(negative, axis=1)[:, None])
    return ops.cast(index, "int32"), valid


SELECTIONS = ("facenet", "semi_hard")


def triplet_distillation(student, teacher, labels, m_max=0.5, m_min=0.2, distance="l2",
                         selection="semi_hard", noise=None):
    """Triplet distillation (Feng et al. 2019): a triplet loss whose margin the teacher sets,
    for a triplet (a, p, n) of an anchor, a positive of its identity and a negative of another:

        m(a, p, n) = (m_max - m_min) / D_max * relu(d_T(a, n) - d_T(a, p)) + m_min
        loss       = relu(d_S(a, p) - d_S(a, n) + m(a, p, n))

    averaged over the selected triplets, one per (a, p) pair; d_S / d_T are the student's and
    the teacher's distances. `selection`:
      "facenet": the authors' (their code follows FaceNet's `select_triplets`): the negative is
          drawn at random among those that violate the margin, d_S(a, n) - d_S(a, p) <
          m(a, p, n); a pair with none is left out. D_max is the largest teacher gap over every
          (a, p, n) of the batch. The draw is the argmax of `noise` (B, B, B) over the
          candidates: pass uniform noise (TripletDistillationHead draws it from its seed).
      "semi_hard": TensorFlow Addons' rule: the closest negative farther than the positive,
          else the farthest; D_max over the selected negatives.
    A batch needs several images per identity (P x K batches); with no pair the loss is 0.
    """
    labels = ops.reshape(labels, (-1,))
    d_s = pairwise_distances(student, distance)
    d_t = ops.stop_gradient(pairwise_distances(teacher, distance))
    if selection == "semi_hard":
        index, valid = semi_hard_negatives(d_s, labels)
        d_s_an = ops.take_along_axis(d_s, index, axis=1)
        gap_t = ops.maximum(ops.take_along_axis(d_t, index, axis=1) - d_t, 0.0)
        validf = ops.cast(valid, d_s.dtype)
        d_max = ops.maximum(ops.max(gap_t * validf), 1e-6)
        margin = ops.stop_gradient((m_max - m_min) / d_max * gap_t + m_min)
        hinge = ops.maximum(d_s - d_s_an + margin, 0.0) * validf
        return ops.sum(hinge) / ops.maximum(ops.sum(validf), 1.0)
    if selection != "facenet":
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if noise is None:
        raise ValueError("selection='facenet' draws its negatives from `noise` (B, B, B)")
    same = ops.equal(labels[:, None], labels[None, :])
    batch = ops.shape(labels)[0]
    positive = ops.logical_and(same, ops.logical_not(ops.eye(batch, dtype="bool")))
    triplet = ops.logical_and(positive[:, :, None], ops.logical_not(same)[:, None, :])
    gap = ops.maximum(d_t[:, None, :] - d_t[:, :, None], 0.0)            # [a, p, n]
    d_max = ops.maximum(ops.max(ops.where(triplet, gap, 0.0)), 1e-6)
    margin = ops.stop_gradient((m_max - m_min) / d_max * gap + m_min)
    hinge = d_s[:, :, None] - d_s[:, None, :] + margin
    candidate = ops.logical_and(triplet, ops.stop_gradient(hinge) > 0.0)
    pick = ops.argmax(ops.where(candidate, ops.cast(noise, d_s.dtype), -1.0), axis=2)
    chosen = ops.take_along_axis(hinge, ops.cast(pick, "int32")[:, :, None], axis=2)[:, :, 0]
    has = ops.cast(ops.any(candidate, axis=2), d_s.dtype)
    return ops.sum(ops.maximum(chosen, 0.0) * has) / ops.maximum(ops.sum(has), 1.0)


@keras.saving.register_keras_serializable(package="tfmargin")
class EmbeddingDistillationLoss(keras.losses.Loss):
    """`model.compile(loss=EmbeddingDistillationLoss("cos"))` with y = teacher embeddings and
    the backbone's embeddings as the prediction."""

    def __init__(self, distance="cos", name="embedding_distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.distance = distance

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.distance == "cos":
            return 1.0 - row_cosine(y_pred, y_true)
        return ops.sum(ops.square(y_pred - y_true), axis=-1)

    def get_config(self):
        return {**super().get_config(), "distance": self.distance}
