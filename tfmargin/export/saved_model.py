"""SavedModel export: what TF Serving, TF.js converters and Python users load.

    export_saved_model(model, "savedmodels/student", card={"teacher": "r100 ArcFace"})

writes, each atomically:
    savedmodels/student/saved_model/    signature serving_default (and "serve"):
                                        {"image": uint8 (B, 112, 112, 3) RGB}
                                        -> {"embedding": float32 (B, D), L2-normalised}
    savedmodels/student/model.keras     the embedding model: one image batch in ([-1, 1]
                                        float, as in training), (B, D) embeddings out; the
                                        training head stays with the training run
    savedmodels/student/model_card.json
"""

import os

import numpy as np

from tfmargin.atomic import atomic_path
from tfmargin.export import graph
from tfmargin.export.card import model_card, write_model_card
from tfmargin.export.files import atomic_directory
from tfmargin.export.model import ExportError, check_input, embedding_model, load_model
from tfmargin.pixels import to_model_input

SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"


def check_saved_model(directory, backbone, images=None, min_cosine=0.9999):
    """Load the SavedModel and compare its embeddings with the Keras model's on uint8 images."""
    from tfmargin.evaluate.artifacts import SavedModelEmbedder

    if images is None:
        images = np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    out = SavedModelEmbedder(directory)(images)
    ref = np.asarray(backbone(to_model_input(images), training=False),
                     np.float64)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = np.sum(out * ref, axis=1)
    if not (cos.min() >= min_cosine and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-4)):
        raise ExportError(f"{directory}: the SavedModel disagrees with the Keras model (min "
                          f"cosine {cos.min():.6f})")


def save_embedding_model(backbone, directory):
    """model.keras of an export folder: the backbone alone, what a user who loads it expects
    (one input, one embedding), never the 3-input training model with its class centers."""
    path = os.path.join(os.fspath(directory), KERAS_FILE)
    with atomic_path(path, suffix=".keras") as tmp:
        backbone.save(tmp)
    return path


def export_saved_model(model, directory, card=None, export_settings=None, save_keras=True,
                       verify=True):
    """SavedModel + model.keras + model_card.json under `directory`; returns the SavedModel path.

    Args:
      model: a Keras model (the backbone or a training model with a head) or a .keras path.
      card: extra model-card fields: "training" (recipe), "teacher", "verification" results...
      export_settings: recorded under the card's "export".
    """
    model = load_model(model)
    backbone = check_input(embedding_model(model))
    directory = os.fspath(directory)
    target = os.path.join(directory, SAVED_MODEL_DIR)
    with atomic_directory(target) as tmp:
        graph.write_archive(backbone, tmp, "uint8", normalize=True)
        if verify:
            check_saved_model(tmp, backbone)
    if save_keras:
        save_embedding_model(backbone, directory)
    settings = {"saved_model": {"input": "uint8 (B, 112, 112, 3) RGB",
                                "output": "L2-normalised float32 embedding",
                                "signature": "serving_default"}, **(export_settings or {})}
    write_model_card(directory, model_card(backbone, model, card, settings))
    return target
