"""Evaluation of face embeddings: 1:1 verification with insightface's protocol, TAR@FAR, 1:N
identification among distractors (MegaFace-style), embedding extraction from any shipped
artifact (Keras, SavedModel, TFLite, ONNX), plots and a training callback.

    from tfmargin.evaluate import embed, verification_from_embeddings, identification
    emb = embed("student.tflite", images)                  # images: uint8 (2N, 112, 112, 3)
    result = verification_from_embeddings(emb, issame)     # insightface's 10 folds
    print(result.accuracy, result.accuracy_std, result.tar_at_far[1e-3])
    pairs = pairwise_verification(embeddings, identities)  # every pair, TAR at FAR 1e-2..1e-4

TensorFlow, Keras, LiteRT, onnxruntime and matplotlib are imported only when first needed, so
`from tfmargin.evaluate import verification` stays cheap. (Functions that share their module's
name, `embed`, `identification`, `verification`, are bound here eagerly so that the package
exposes the function, not the module.)
"""

import importlib

from tfmargin.data.pairs import Pairs, load_pair_images, read_pairs  # one parser, in data/
from tfmargin.evaluate.artifacts import Embedder, load_embedder
from tfmargin.evaluate.embed import embed
from tfmargin.evaluate.identification import IdentificationResult, identification
from tfmargin.evaluate.identification_set import load_identification_set, run_identification
from tfmargin.evaluate.pairwise import PairwiseResult, pairwise_verification
from tfmargin.evaluate.roc import default_fars, roc_curve, tar_at_far
from tfmargin.evaluate.sets import evaluate_sets, format_table, load_sets
from tfmargin.evaluate.verification import (VerificationResult, verification,
                                            verification_from_embeddings)

_LAZY = {
    "plot_roc": "tfmargin.evaluate.plots",
    "plot_angle_histograms": "tfmargin.evaluate.plots",
    "center_angles": "tfmargin.evaluate.plots",
    "VerificationCallback": "tfmargin.evaluate.callback",
    "TeacherReport": "tfmargin.evaluate.teacher",
    "teacher_report": "tfmargin.evaluate.teacher",
}

__all__ = [
    "Embedder", "IdentificationResult", "PairwiseResult", "Pairs", "VerificationResult",
    "default_fars", "embed", "evaluate_sets", "format_table", "identification", "load_embedder",
    "load_identification_set", "load_pair_images", "load_sets", "pairwise_verification",
    "read_pairs", "roc_curve",
    "run_identification", "tar_at_far", "verification", "verification_from_embeddings",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
