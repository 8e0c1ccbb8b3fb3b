"""Classification and distillation heads, Keras layers written with keras.ops.

    MarginHead (ArcFace / CosFace / SphereFace)   head([embeddings, labels])
    MarginDistillationHead                         head([embeddings, labels, teacher_embeddings])
    AdaDistillHead (AdaArcDistill)                 head([embeddings, labels, teacher_embeddings])
    SoftmaxWarmup(head, warmup_steps, ramp_steps)  a margin that waits, then ramps up
    sample_rate=... on the center-holding heads     Partial FC (partial_fc.py)
    baselines: AngularDistillationHead, MarginKDHead, HintonKDHead, TripletDistillationHead,
               EmbeddingDistillationHead          head([embeddings, labels, teacher_embeddings])
"""

import keras

from tfmargin.heads.adadistill import AdaDistillHead
from tfmargin.heads.baselines import (AngularDistillationHead, EmbeddingDistillationHead,
                                      HintonKDHead, MarginKDHead, TripletDistillationHead)
from tfmargin.heads.distill import MarginDistillationHead
from tfmargin.heads.margin import ArcFace, CosFace, MarginHead, SphereFace
from tfmargin.heads.partial_fc import SampledSoftmaxLoss, sampled_accuracy
from tfmargin.heads.warmup import SoftmaxWarmup

__all__ = ["AdaDistillHead", "AngularDistillationHead", "ArcFace", "CosFace",
           "EmbeddingDistillationHead", "HintonKDHead", "MarginDistillationHead", "MarginHead",
           "MarginKDHead", "SampledSoftmaxLoss", "SoftmaxWarmup", "SphereFace",
           "TripletDistillationHead", "compile_loss", "compile_metrics"]


def compile_loss(head):
    """What to pass as `model.compile(loss=...)` for a model ending in `head`: cross-entropy on
    the logits for heads that return margin logits (over the sampled classes for a Partial FC
    head), None for heads that add their own objective."""
    if getattr(head, "OBJECTIVE", "logits") == "internal":
        return None
    if getattr(head, "samples", False):
        return SampledSoftmaxLoss()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_metrics(head):
    """The training accuracy for heads that return logits (None for the others)."""
    if getattr(head, "OBJECTIVE", "logits") != "logits":
        return None
    return [sampled_accuracy()] if getattr(head, "samples", False) else ["accuracy"]
