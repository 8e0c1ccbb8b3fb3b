"""Method name -> head: the teacher's margin heads, the MarginDistillation student, its
baselines and the ArcFace control (docs/method.md). Every student head takes
`[embeddings, labels, teacher_embeddings]` except the ArcFace control's `[embeddings, labels]`.
"""

from tfmargin import heads
from tfmargin.heads.warmup import SoftmaxWarmup
from tfmargin.train.config import method_defaults, resolve_scale

TEACHER_HEADS = {"arcface": heads.ArcFace, "cosface": heads.CosFace,
                 "sphereface": heads.SphereFace}


def make_head(config, num_classes, centers=None):
    """The head a TrainConfig asks for. `centers` (D, C): the teacher's, for the methods that
    use them (margin_distillation, margin_kd_t, hinton_kd)."""
    d = method_defaults(config)
    config = config.replace(scale=resolve_scale(config, num_classes))
    if config.role == "teacher":
        head = TEACHER_HEADS[config.head](num_classes, scale=config.scale, margin=d["margin"],
                                          name="head")
    else:
        head = _student_head(config, num_classes, centers, d)
    if config.softmax_warmup_steps or config.margin_ramp_steps:
        head = SoftmaxWarmup(head, config.softmax_warmup_steps, config.margin_ramp_steps)
    return head


def _student_head(c, num_classes, centers, d):
    m = c.method
    if m in ("margin_distillation", "margin_kd_t", "hinton_kd") and centers is None:
        raise ValueError(f"method {m} needs the teacher's centers")
    if m == "margin_distillation":
        d_max = c.d_max if c.d_max == "batch" else float(c.d_max)
        return heads.MarginDistillationHead(centers, scale=c.scale, m_max=c.m_max, m_min=c.m_min,
                                            d_max=d_max, clip=c.clip_margin, name="head")
    if m == "arcface":
        return heads.ArcFace(num_classes, scale=c.scale, margin=d["margin"], name="head")
    if m == "angular":
        return heads.AngularDistillationHead(num_classes, scale=c.scale, margin=d["margin"],
                                             alpha=d["alpha"], name="head")
    if m == "margin_kd_t":
        return heads.MarginKDHead(centers, scale=c.scale, margin=d["margin"],
                                  temperature=c.temperature, alpha=d["alpha"], name="head")
    if m == "hinton_kd":
        return heads.HintonKDHead(centers, scale=c.scale, temperature=c.temperature,
                                  alpha=d["alpha"], name="head")
    if m in ("triplet_l2", "triplet_cos"):
        return heads.TripletDistillationHead(m_max=c.m_max, m_min=c.m_min,
                                             distance=m.split("_")[1], name="head")
    if m == "embedding":
        return heads.EmbeddingDistillationHead(distance=c.distance, name="head")
    raise ValueError(f"method: unknown method {m!r}")


def reads_teacher(head):
    """Whether the head's inputs include the teacher embeddings: every head but a plain
    MarginHead (teacher heads and the ArcFace control)."""
    inner = getattr(head, "head", head)
    return type(inner) is not heads.MarginHead
