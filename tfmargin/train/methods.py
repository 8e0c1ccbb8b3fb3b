"""The head a recipe asks for: the teacher's margin heads, or the student method's head from
tfmargin.train.registry (docs/method.md). Every student head takes
`[embeddings, labels, teacher_embeddings]` except the ArcFace control's `[embeddings, labels]`.
"""

from tfmargin import heads
from tfmargin.heads.warmup import SoftmaxWarmup
from tfmargin.train.config import method_defaults, resolve_scale
from tfmargin.train.registry import get_method, sampling

TEACHER_HEADS = {"arcface": heads.ArcFace, "cosface": heads.CosFace,
                 "sphereface": heads.SphereFace}


def make_head(config, num_classes, centers=None):
    """The head a TrainConfig asks for. `centers` (D, C): the teacher's, for the methods that
    use them (margin_distillation, margin_kd_t, hinton_kd)."""
    d = method_defaults(config)
    config = config.replace(scale=resolve_scale(config, num_classes))
    if config.role == "teacher":
        head = TEACHER_HEADS[config.head](num_classes, scale=config.scale, margin=d["margin"],
                                          name="head", **sampling(config))
    else:
        head = _student_head(config, num_classes, centers, d)
    if config.softmax_warmup_steps or config.margin_ramp_steps:
        head = SoftmaxWarmup(head, config.softmax_warmup_steps, config.margin_ramp_steps)
    return head


def _student_head(c, num_classes, centers, d):
    method = get_method(c.method)
    if method.needs_centers and centers is None:
        raise ValueError(f"method {c.method} needs the teacher's centers")
    return method.build(c, num_classes, centers, d["margin"], d["alpha"])


def reads_teacher(head):
    """Whether the head's inputs include the teacher embeddings: every head but a plain
    MarginHead (teacher heads and the ArcFace control)."""
    inner = getattr(head, "head", head)
    return type(inner) is not heads.MarginHead
