"""What an exporter is handed: a Keras model in memory or a `.keras` path, either the embedding
model (the backbone: one image input, (B, D) embeddings) or a whole training model (backbone +
margin head, as tfmargin's training and demo build it). Exporters ship the backbone; QAT also
needs the head, for the student's own loss."""

import os

IMAGE_SIZE = 112


class ExportError(ValueError):
    """An export that cannot be done as asked; the message names the model, file or mode."""


def load_model(model):
    """A Keras model from a model or a `.keras` / `.h5` path (tfmargin's layers registered)."""
    import keras

    if hasattr(model, "layers"):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model {path} does not exist")
    if not path.endswith((".keras", ".h5")):
        raise ExportError(f"model {path}: expected a .keras (or .h5) file")
    import tfmargin.heads  # noqa: F401  (registers the head layers for deserialisation)
    import tfmargin.models  # noqa: F401
    return keras.saving.load_model(path, compile=False)


def _is_embedding_model(model):
    inputs = getattr(model, "inputs", None) or []
    return len(inputs) == 1 and len(inputs[0].shape) == 4 and len(model.outputs) == 1 \
        and len(model.outputs[0].shape) == 2


def embedding_model(model):
    """The backbone of `model`: the model itself if it maps one image batch to embeddings, else
    its sub-model named "backbone" (or its only nested model that does)."""
    model = load_model(model)
    if _is_embedding_model(model):
        return model
    try:
        inner = model.get_layer("backbone")
    except ValueError:
        nested = [layer for layer in model.layers if _is_embedding_model(layer)]
        if len(nested) != 1:
            raise ExportError(f"model {model.name!r}: found {len(nested)} embedding sub-models; "
                              "pass the backbone (one image input -> (B, D) embeddings)") from None
        inner = nested[0]
    if not _is_embedding_model(inner):
        raise ExportError(f"model {model.name!r}: its 'backbone' layer is not an embedding model")
    return inner


def check_input(backbone):
    """Exported artifacts take 112x112 RGB; a backbone built for another size is refused."""
    shape = tuple(backbone.inputs[0].shape[1:])
    if shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ExportError(f"model {backbone.name!r}: input shape {shape}; exported students take "
                          f"({IMAGE_SIZE}, {IMAGE_SIZE}, 3) ArcFace-aligned RGB")
    return backbone


def find_head(model):
    """The margin head of a training model (a layer with class centers), or None."""
    model = load_model(model)
    heads = [layer for layer in model.layers if hasattr(layer, "centers")
             and layer.__class__.__module__.startswith("tfmargin.heads")]
    if len(heads) > 1:
        raise ExportError(f"model {model.name!r}: {len(heads)} heads; expected one")
    return heads[0] if heads else None


def describe(backbone):
    """Architecture facts for the model card and the report."""
    from tfmargin.models import count_macs, count_params

    _, params = count_params(backbone)
    activations = sorted({type(layer).__name__ for layer in backbone.layers
                          if type(layer).__name__ in ("ReLU", "PReLU")})
    return {"name": backbone.name, "embedding_size": int(backbone.outputs[0].shape[-1]),
            "input_shape": [IMAGE_SIZE, IMAGE_SIZE, 3], "params": int(params),
            "macs": int(count_macs(backbone)), "activations": activations}
