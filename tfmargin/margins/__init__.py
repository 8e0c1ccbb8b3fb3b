"""Cosines and margins as functions (keras.ops; TF and JAX): the bottom of the package, below
the heads that hold class centers and the losses that combine them."""

from tfmargin.margins.cosine import (COS_EPS, NORM_EPS, cosine_logits, cosine_to_rows, flat_labels,
                                     l2_normalize, row_cosine, target_cosines)
from tfmargin.margins.margin import (CombinedMargin, adacos_scale, apply_margin, margin_logits,
                                     margin_target, replace_target, teacher_margins)
from tfmargin.margins.sampling import per_shard, sample_classes, target_first

__all__ = ["COS_EPS", "NORM_EPS", "CombinedMargin", "adacos_scale", "apply_margin",
           "cosine_logits", "cosine_to_rows", "flat_labels", "l2_normalize", "margin_logits",
           "margin_target", "per_shard", "replace_target", "row_cosine", "sample_classes",
           "target_cosines", "target_first", "teacher_margins"]
