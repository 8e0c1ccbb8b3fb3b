"""Loading tfmargin models: one loader that knows every tfmargin layer, and the backbone of a
classifier file.

    model = load_model("runs/teacher/classifier.keras")     # backbone + head (any warm-up)
    backbone = load_backbone("runs/teacher/classifier.keras")  # images -> embeddings

Every entry point that accepts a `.keras` file (evaluation, export, the teacher signal, the
demo) loads it here, so a file saved with any tfmargin layer loads without the caller having
imported the module that defines it.
"""

import os

from tfmargin.errors import ModelFileError

EXTENSIONS = (".keras", ".h5")


def register_layers():
    """Import every module that registers tfmargin classes for Keras deserialisation."""
    import tfmargin.heads  # noqa: F401  margin, distillation and baseline heads, SoftmaxWarmup
    import tfmargin.models.layers  # noqa: F401  GroupedConv2D and the other backbone layers


def load_model(path):
    """The Keras model saved at `path` (.keras / .h5), every tfmargin layer registered, without
    its optimizer state (training resumes from BackupAndRestore, not from this file).
    ModelFileError (one line naming the file) when it is missing or cannot be loaded."""
    import keras

    register_layers()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: model file does not exist")
    if not path.lower().endswith(EXTENSIONS):
        raise ModelFileError(f"{path}: expected a .keras (or .h5) model file")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  any loader failure becomes one line naming the file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{path}: cannot load the model ({first[:200]})") from None


def is_embedder(model):
    """One image batch (B, H, W, C) in, one (B, D) embedding out."""
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    return (len(inputs) == 1 and len(outputs) == 1 and len(inputs[0].shape) == 4
            and len(outputs[0].shape) == 2)


def find_backbone(model, where=None):
    """The embedding model of `model`: the model itself when it maps images to (B, D); else its
    nested sub-model named "backbone" (or ending in a layer named "embedding"); else its only
    nested embedding sub-model; else the path
    from its image input to a layer named "embedding"."""
    import keras

    where = where or f"model {getattr(model, 'name', model)!r}"
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{where}: expected a keras Model, got {type(model).__name__}")
    if is_embedder(model):
        return model
    subs = [m for m in model.layers if isinstance(m, keras.Model) and is_embedder(m)]
    named = [m for m in subs if m.name == "backbone"] or \
        [m for m in subs if m.layers and m.layers[-1].name == "embedding"]
    if named or len(subs) == 1:
        return (named or subs)[0]
    try:
        layer = model.get_layer("embedding")
    except ValueError:
        layer = None
    images = [t for t in model.inputs if len(t.shape) == 4]
    if layer is not None and len(images) == 1:
        return keras.Model(images[0], layer.output, name="backbone")
    raise ModelFileError(f"{where}: cannot find the embedding backbone (expected an image -> "
                         "(B, D) model, a sub-model named 'backbone' or a layer named "
                         "'embedding')")


def load_backbone(path):
    """The embedding model (images -> embeddings) of the model saved at `path`, whether it
    holds a backbone or a whole classifier (backbone + head)."""
    return find_backbone(load_model(path), where=os.fspath(path))


def _center_layers(model):
    import keras

    found = []
    for layer in model.layers:
        if getattr(layer, "centers", None) is not None:
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(_center_layers(layer))
    return found


def find_centers(model, where=None):
    """The class centers (D, C) float32, as stored (not normalised), of a classifier (any layer,
    nested models searched, exposing `.centers`: a margin head, a warm-up wrapper) or of a head
    layer itself."""
    import keras
    import numpy as np

    where = where or f"model {getattr(model, 'name', model)!r}"
    if isinstance(model, keras.Model):
        layers = _center_layers(model)
        if not layers:
            raise ModelFileError(f"{where}: no head with class centers (a MarginHead)")
        if len(layers) > 1:
            names = ", ".join(layer.name for layer in layers)
            raise ModelFileError(f"{where}: several layers hold centers ({names}); pass the "
                                 "head layer itself")
        model = layers[0]
    centers = getattr(model, "centers", None)
    if centers is None:
        raise ModelFileError(f"{where}: has no class centers (is the head built?)")
    return np.asarray(keras.ops.convert_to_numpy(centers), np.float32)
