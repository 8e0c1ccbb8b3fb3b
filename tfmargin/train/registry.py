"""The one registry of training methods: for each student method, which head it trains, what
it reads, how its batches are drawn and its defaults (a task registry in the manner of TF Model
Garden). Config checks, the head builder, the CLI help, the divergence advice and the demo all
read it; adding a method is one `register_method` call.

The builders import tfmargin.heads only when called, so reading the registry (as TrainConfig's
checks do) never imports Keras.
"""

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    title: str                # how tables and docs name it
    build: Callable           # (config, num_classes, centers, margin, alpha) -> head layer
    reads_teacher: bool       # its head takes the teacher's embeddings as a third input
    needs_centers: bool       # it needs the teacher's class centers (from the signal)
    has_margin: bool          # a margin that a softmax warm-up / ramp can hold back
    identity_batches: bool = False   # P x K batches (K images of each of P identities)
    alpha: float | None = None       # default weight of its distillation term
    alpha_max: float | None = None   # upper bound of alpha (KD mixes: 1)
    replicas: bool = True            # trains under tf.distribute (mirrored, multi-worker)
    partial_fc: bool = False         # a center softmax that --sample_rate can sample


METHODS = {}


def register_method(method):
    """Add (or replace) a method; its name becomes a valid `--method`."""
    METHODS[method.name] = method
    return method


def get_method(name):
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method: unknown method {name!r}; known: {', '.join(METHODS)}") from None


def method_names():
    return tuple(METHODS)


# -- the builders ------------------------------------------------------------------------------

def sampling(c):
    """The Partial FC arguments of a center-holding head: the recipe's sample_rate, seeded by
    its seed, sampled per shard of the class axis when the centers are sharded."""
    if c.sample_rate >= 1.0:
        return {}
    from tfmargin.train.strategy import class_shards

    return {"sample_rate": c.sample_rate, "sample_seed": c.seed,
            "sample_shards": class_shards(c.strategy)}


def _md(c, num_classes, centers, margin, alpha):
    from tfmargin.heads import MarginDistillationHead

    d_max = c.d_max if c.d_max == "batch" else float(c.d_max)
    return MarginDistillationHead(centers, scale=c.scale, m_max=c.m_max, m_min=c.m_min,
                                  d_max=d_max, clip=c.clip_margin, name="head", **sampling(c))


def _arcface(from_teacher):
    # the control (its own random centers) or arcface_init (starting at the teacher's)
    def build(c, num_classes, centers, margin, alpha):
        from tfmargin.heads import ArcFace

        return ArcFace(num_classes, scale=c.scale, margin=margin, name="head",
                       initial_centers=centers if from_teacher else None, **sampling(c))
    return build


def _arcdistill(c, num_classes, centers, margin, alpha):
    # MarginDistillation without its per-sample margin: with m_max = m_min = m the margin
    # (m_max - m_min) / D_max * cos_t + m_min is the constant m, exactly.
    from tfmargin.heads import MarginDistillationHead

    return MarginDistillationHead(centers, scale=c.scale, m_max=margin, m_min=margin,
                                  name="head", **sampling(c))


def _adadistill(c, num_classes, centers, margin, alpha):
    from tfmargin.heads import AdaDistillHead

    return AdaDistillHead(num_classes, scale=c.scale, margin=margin, name="head", **sampling(c))


def _angular(c, num_classes, centers, margin, alpha):
    from tfmargin.heads import AngularDistillationHead

    return AngularDistillationHead(num_classes, scale=c.scale, margin=margin, alpha=alpha,
                                   name="head", **sampling(c))


def _margin_kd(c, num_classes, centers, margin, alpha):
    from tfmargin.heads import MarginKDHead

    return MarginKDHead(centers, scale=c.scale, margin=margin, temperature=c.temperature,
                        alpha=alpha, name="head")


def _hinton_kd(c, num_classes, centers, margin, alpha):
    from tfmargin.heads import HintonKDHead

    return HintonKDHead(centers, scale=c.scale, temperature=c.temperature, alpha=alpha,
                        name="head")


def _triplet(distance):
    def build(c, num_classes, centers, margin, alpha):
        from tfmargin.heads import TripletDistillationHead

        return TripletDistillationHead(m_max=c.m_max, m_min=c.m_min, distance=distance,
                                       seed=c.seed, name="head")
    return build


def _embedding(c, num_classes, centers, margin, alpha):
    from tfmargin.heads import EmbeddingDistillationHead

    return EmbeddingDistillationHead(distance=c.distance, name="head")


for _method in (
    Method("margin_distillation", "MarginDistillation", _md, reads_teacher=True,
           needs_centers=True, has_margin=True, partial_fc=True),
    Method("arcface", "ArcFace (no teacher)", _arcface(False), reads_teacher=False,
           needs_centers=False, has_margin=True, partial_fc=True),
    Method("arcdistill", "ArcDistill (teacher centers, constant margin)", _arcdistill,
           reads_teacher=True, needs_centers=True, has_margin=True, partial_fc=True),
    Method("arcface_init", "ArcFace from the teacher's centers", _arcface(True),
           reads_teacher=False, needs_centers=True, has_margin=True, partial_fc=True),
    # AdaDistill's centers change inside the step: each replica would update its own copy from
    # its own share of the batch, so it runs on one device until the update is all-gathered.
    Method("adadistill", "AdaDistill (AdaArcDistill)", _adadistill, reads_teacher=True,
           needs_centers=False, has_margin=True, replicas=False, partial_fc=True),
    Method("angular", "Angular distillation", _angular, reads_teacher=True,
           needs_centers=False, has_margin=True, alpha=1.0, partial_fc=True),
    Method("triplet_l2", "Triplet distillation (L2)", _triplet("l2"), reads_teacher=True,
           needs_centers=False, has_margin=False, identity_batches=True),
    Method("triplet_cos", "Triplet distillation (cos)", _triplet("cos"), reads_teacher=True,
           needs_centers=False, has_margin=False, identity_batches=True),
    Method("margin_kd_t", "Margin-based KD with T", _margin_kd, reads_teacher=True,
           needs_centers=True, has_margin=False, alpha=0.95, alpha_max=1.0),
    Method("hinton_kd", "Hinton KD", _hinton_kd, reads_teacher=True, needs_centers=True,
           has_margin=False, alpha=0.95, alpha_max=1.0),
    Method("embedding", "Embedding distillation", _embedding, reads_teacher=True,
           needs_centers=False, has_margin=False),
):
    register_method(_method)
