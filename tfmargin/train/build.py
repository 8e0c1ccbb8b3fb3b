"""The trainable classifier: backbone + head, inputs {"image", "label", "teacher"?}, compiled
with the recipe's optimiser, under the recipe's precision. Notebooks can call these and then
`model.fit` themselves:

    built = build_student(config, signal)            # or build_teacher(config, num_classes)
    built.model.fit(dataset, ...)                     # batches ({"image", "label", "teacher"}, label)
    built.backbone.save("student.keras")              # the embedding model
"""

import contextlib
import dataclasses

import keras

from tfmargin.heads import compile_loss, compile_metrics
from tfmargin.models import build_backbone, load_backbone
from tfmargin.train.config import ConfigError
from tfmargin.train.methods import make_head, reads_teacher
from tfmargin.train.sgd import CenterLossScale, build_optimizer


@dataclasses.dataclass
class Built:
    model: keras.Model       # the classifier being trained; its head holds the centers
    backbone: keras.Model    # images -> embeddings, what is deployed
    head: keras.layers.Layer


@contextlib.contextmanager
def precision(policy):
    """Build under a global dtype policy, then put the previous one back (layers keep theirs)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def classifier(backbone, head, teacher_dim=None):
    """Model({"image", "label"[, "teacher"]}) -> head output. `teacher_dim` adds the teacher
    input for heads that read it."""
    image = keras.Input(backbone.input_shape[1:], name="image")
    label = keras.Input((), dtype="int32", name="label")
    inputs = {"image": image, "label": label}
    embeddings = backbone(image)
    head_inputs = [embeddings, label]
    if reads_teacher(head):
        if not teacher_dim:
            raise ValueError(f"{getattr(head, 'head', head).name}: this head reads the teacher's "
                             "embeddings; give teacher_dim")
        inputs["teacher"] = keras.Input((teacher_dim,), name="teacher")
        head_inputs.append(inputs["teacher"])
    return keras.Model(inputs, head(head_inputs), name="classifier")


def compile_classifier(model, head, config):
    optimizer = build_optimizer(config)
    if model.dtype_policy.name == "mixed_float16":  # what compile would do, resumable
        optimizer = CenterLossScale(optimizer, name="loss_scale_optimizer")
    model.compile(optimizer=optimizer, loss=compile_loss(head), metrics=compile_metrics(head))
    return model


def compiled_classifier(backbone, head, config=None, teacher_dim=None):
    """`classifier` compiled with the optimiser of `config` (default: the paper's SGD 0.1,
    momentum 0.9, MXNet-style weight decay 5e-4): the one builder benchmarks and tests use."""
    from tfmargin.train.config import TrainConfig

    model = classifier(backbone, head, teacher_dim)
    return compile_classifier(model, head, config or TrainConfig())


def _backbone(config):
    backbone = build_backbone(config.backbone, embedding_size=config.embedding_size,
                              input_shape=(config.image_size, config.image_size, 3),
                              name="backbone", **config.backbone_kwargs)
    if config.init_backbone:
        start = load_backbone(config.init_backbone)
        theirs, ours = start.get_weights(), backbone.get_weights()
        if [w.shape for w in theirs] != [w.shape for w in ours]:
            raise ConfigError(f"init_backbone: {config.init_backbone} is not a "
                              f"{config.backbone} with {config.embedding_size}-d embeddings")
        backbone.set_weights(theirs)
    return backbone


def build_teacher(config, num_classes):
    """Backbone + margin head (config.head) over `num_classes` classes, compiled."""
    if config.role != "teacher":
        config = config.replace(role="teacher")
    with precision(config.precision):
        backbone = _backbone(config)
        head = make_head(config, num_classes)
        model = classifier(backbone, head)
        compile_classifier(model, head, config)
    return Built(model, backbone, head)


def build_student(config, signal=None, num_classes=None):
    """Student backbone + the head of config.method, compiled. `signal` (a TeacherSignal) gives
    the frozen centers and the teacher dimension; the ArcFace control needs `num_classes`."""
    if config.needs_teacher and signal is None:
        raise ConfigError(f"teacher_signal: method {config.method} needs a teacher signal")
    centers = teacher_dim = None
    if signal is not None:
        centers, teacher_dim = signal.centers, signal.embedding_size
        # Triplet distillation compares distances within each space; the others share one.
        if config.needs_teacher and not config.triplet and teacher_dim != config.embedding_size:
            raise ConfigError(
                f"embedding_size: the student's {config.embedding_size}-d embedding does not "
                f"match the teacher's {teacher_dim}-d ({signal.directory}); the student must "
                "embed into the teacher's space")
        num_classes = num_classes or signal.num_classes
    if not num_classes:
        raise ConfigError("num_classes: unknown; give num_classes or a teacher signal")
    with precision(config.precision):
        backbone = _backbone(config)
        head = make_head(config, num_classes, centers)
        model = classifier(backbone, head,
                           teacher_dim if config.reads_teacher_embeddings else None)
        compile_classifier(model, head, config)
    return Built(model, backbone, head)
