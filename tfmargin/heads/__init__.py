"""Classification and distillation heads, Keras layers written with keras.ops.

    MarginHead (ArcFace / CosFace / SphereFace)   head([embeddings, labels])
    MarginDistillationHead                         head([embeddings, labels, teacher_embeddings])
    AdaDistillHead (AdaArcDistill)                 head([embeddings, labels, teacher_embeddings])
    SoftmaxWarmup(head, warmup_steps, ramp_steps)  a margin that waits, then ramps up
    baselines: AngularDistillationHead, MarginKDHead, HintonKDHead, TripletDistillationHead,
               EmbeddingDistillationHead          head([embeddings, labels, teacher_embeddings])
"""

import keras

from tfmargin.heads.adadistill import AdaDistillHead
from tfmargin.heads.baselines import (AngularDistillationHead, EmbeddingDistillationHead,
                                      HintonKDHead, MarginKDHead, TripletDistillationHead)
from tfmargin.heads.distill import MarginDistillationHead
from tfmargin.heads.margin import ArcFace, CosFace, MarginHead, SphereFace
from tfmargin.heads.warmup import SoftmaxWarmup

__all__ = ["AdaDistillHead", "AngularDistillationHead", "ArcFace", "CosFace",
           "EmbeddingDistillationHead", "HintonKDHead", "MarginDistillationHead", "MarginHead",
           "MarginKDHead", "SoftmaxWarmup", "SphereFace", "TripletDistillationHead",
           "compile_loss"]


def compile_loss(head):
    """What to pass as `model.compile(loss=...)` for a model ending in `head`: cross-entropy on
    the logits for heads that return margin logits, None for heads that add their own objective."""
    if getattr(head, "OBJECTIVE", "logits") == "internal":
        return None
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
