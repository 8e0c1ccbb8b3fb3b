"""The distillation baselines as heads: each takes `[embeddings, labels, teacher_embeddings]`,
the same inputs as MarginDistillationHead, so one training loop serves every method.

`OBJECTIVE` tells how a head is trained:
* "logits": the head returns margin logits; compile with sparse categorical cross-entropy
  (from logits), and the head adds its distillation term with `add_loss`.
* "internal": the head adds its whole objective with `add_loss`; compile with `loss=None`.
  It returns what inference-time metrics want (plain cosine logits or unit embeddings).
"""

import keras
from keras import ops

from tfmargin import losses
from tfmargin import margins
from tfmargin.heads import centers as frozen
from tfmargin.heads.margin import MarginHead


@keras.saving.register_keras_serializable(package="tfmargin")
class AngularDistillationHead(MarginHead):
    """Angular distillation (after ShrinkTeaNet, Duong et al. 2019): ArcFace with the student's
    own centers + alpha * mean(1 - cos(s_i, t_i))."""

    OBJECTIVE = "logits"

    def __init__(self, num_classes, scale=64.0, margin=0.5, alpha=1.0, **kwargs):
        kwargs = {"m1": 1.0, "m2": margin, "m3": 0.0, **kwargs}
        super().__init__(num_classes, scale=scale, **kwargs)
        self.alpha = float(alpha)

    def logits_from_cosines(self, cos, inputs, margin_fraction=1.0, columns=None):
        embeddings, _, teacher = inputs
        self.add_loss(self.alpha * losses.cosine_distillation(embeddings, teacher))
        return super().logits_from_cosines(cos, inputs, margin_fraction, columns)

    def get_config(self):
        config = super().get_config()
        config["margin"] = config.pop("m2")
        for key in ("m1", "m3"):
            config.pop(key)
        return {**config, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="tfmargin")
class MarginKDHead(frozen.CenterRows, keras.layers.Layer):
    """Margin-based softmax with temperature KD (Nekhaev et al., ICMV 2019), by its definition:

        (1 - alpha) * ArcFace CE(student)  +  alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

    What is implemented: z_s = ArcFace logits of the student against its own trainable centers,
    z_t = ArcFace logits of the teacher against its frozen centers, i.e. scale * cos(theta +
    margin) at the sample's class and scale * cos(theta) elsewhere on both sides, before the
    temperature, as the authors' code applies the margin (the paper's text could not be checked
    here). Without the margin in the soft term this would be HintonKDHead plus a 5 % ArcFace
    term. The whole objective is added with add_loss (OBJECTIVE "internal"); the head returns
    the plain student logits scale * cos.
    """

    OBJECTIVE = "internal"
    ROW_WEIGHTS = ("center_rows", "teacher_rows")
    VIEWS = ("centers", "teacher_centers")

    def __init__(self, centers=None, scale=64.0, margin=0.5, temperature=4.0, alpha=0.95,
                 num_classes=None, embedding_dim=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self._initial_centers, self.num_classes, self.embedding_dim = frozen.resolve(
            self.name, centers, num_classes, embedding_dim)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"{self.name}: alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"{self.name}: temperature must be > 0, got {temperature}")
        self.scale, self.margin = float(scale), float(margin)
        self.temperature, self.alpha = float(temperature), float(alpha)

    @property
    def teacher_centers(self):
        """The teacher's frozen centers as (D, C) (None before the head is built)."""
        rows = getattr(self, "teacher_rows", None)
        return None if rows is None else ops.transpose(rows)

    def build(self, input_shape):
        frozen.check_dims(self.name, self.embedding_dim, student=input_shape[0][-1],
                          teacher=input_shape[2][-1])
        self.teacher_rows = frozen.add_frozen(self, self._initial_centers, self.embedding_dim,
                                              self.num_classes, name="teacher_centers")
        self._initial_centers = None
        self.center_rows = frozen.add_rows(
            self, self.embedding_dim, self.num_classes, trainable=True,
            initializer=keras.initializers.RandomNormal(stddev=0.01))

    def call(self, inputs):
        embeddings, labels, teacher = inputs
        labels = margins.flat_labels(labels)
        cos = margins.cosine_to_rows(embeddings, self.center_rows)
        margin_logits = margins.apply_margin(cos, labels, self.scale, m2=self.margin)
        hard = ops.mean(ops.sparse_categorical_crossentropy(labels, margin_logits, from_logits=True))
        # The soft term compares margin logits: the angular margin at the target class of the
        # student's and of the teacher's logits, before the temperature (what makes it
        # margin-based KD; with margin 0, HintonKDHead, it is Hinton's KD on cosine logits).
        cos_t = margins.cosine_to_rows(ops.cast(teacher, "float32"), self.teacher_rows)
        z_t = ops.stop_gradient(margins.apply_margin(cos_t, labels, self.scale, m2=self.margin))
        soft = losses.kd_divergence(z_t, margin_logits, self.temperature)
        self.add_loss((1.0 - self.alpha) * hard + self.alpha * soft)
        return self.scale * cos

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "margin": self.margin,
                "temperature": self.temperature, "alpha": self.alpha,
                "num_classes": self.num_classes, "embedding_dim": self.embedding_dim,
                **self.center_config()}


@keras.saving.register_keras_serializable(package="tfmargin")
class HintonKDHead(MarginKDHead):
    """Hinton KD: (1 - alpha) * CE + alpha * T^2 * KL on the plain (margin-free) cosine logits."""

    def __init__(self, centers=None, scale=64.0, temperature=4.0, alpha=0.95, **kwargs):
        kwargs["margin"] = 0.0
        super().__init__(centers, scale=scale, temperature=temperature, alpha=alpha, **kwargs)


@keras.saving.register_keras_serializable(package="tfmargin")
class TripletDistillationHead(keras.layers.Layer):
    """Triplet distillation (Feng et al. 2019) with the teacher-set margin; `distance` "l2"
    (squared L2 of unit vectors) or "cos" (angle); `selection` "facenet" (the authors': a
    random margin-violating negative, drawn from `seed`) or "semi_hard"
    (tfmargin.losses.triplet_distillation). Returns unit embeddings."""

    OBJECTIVE = "internal"

    def __init__(self, m_max=0.5, m_min=0.2, distance="l2", selection="facenet", seed=None,
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if distance not in losses.DISTANCES:
            raise ValueError(f"{self.name}: distance must be one of {losses.DISTANCES}, got {distance!r}")
        if selection not in losses.SELECTIONS:
            raise ValueError(f"{self.name}: selection must be one of {losses.SELECTIONS}, got "
                             f"{selection!r}")
        self.m_max, self.m_min, self.distance = float(m_max), float(m_min), distance
        self.selection, self.seed = selection, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def noise(self, batch):
        """Uniform (B, B, B) priorities: the negative of each (a, p) is the candidate with the
        largest, so every margin-violating negative is equally likely."""
        return keras.random.uniform((batch, batch, batch), seed=self.seed_generator)

    def call(self, inputs):
        embeddings, labels, teacher = inputs
        noise = (self.noise(ops.shape(embeddings)[0]) if self.selection == "facenet"
                 else None)
        self.add_loss(losses.triplet_distillation(
            embeddings, ops.cast(teacher, "float32"), margins.flat_labels(labels),
            self.m_max, self.m_min, self.distance, self.selection, noise))
        return margins.l2_normalize(embeddings)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "m_max": self.m_max, "m_min": self.m_min,
                "distance": self.distance, "selection": self.selection, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfmargin")
class EmbeddingDistillationHead(keras.layers.Layer):
    """Embedding distillation alone (no classifier): 1 - cos(s, t) ("cos") or |s - t|^2 ("l2").
    Labels are accepted and ignored so every method takes the same inputs."""

    OBJECTIVE = "internal"

    def __init__(self, distance="cos", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if distance not in losses.DISTANCES:
            raise ValueError(f"{self.name}: distance must be one of {losses.DISTANCES}, got {distance!r}")
        self.distance = distance

    def call(self, inputs):
        embeddings, _, teacher = inputs
        self.add_loss(losses.embedding_distillation(embeddings, ops.cast(teacher, "float32"),
                                                    self.distance))
        return margins.l2_normalize(embeddings)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "distance": self.distance}
