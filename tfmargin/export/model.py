"""What an exporter is handed: a Keras model in memory or a `.keras` path, either the embedding
model (the backbone: one image input, (B, D) embeddings) or a whole training model (backbone +
margin head, as tfmargin's training and demo build it). Exporters ship the backbone; QAT also
needs the head, for the student's own loss."""

from tfmargin.errors import TfmarginError

IMAGE_SIZE = 112


class ExportError(TfmarginError, ValueError):
    """An export that cannot be done as asked; the message names the model, file or mode."""


def load_model(model):
    """A Keras model from a model or a `.keras` / `.h5` path (tfmargin.models.load_model)."""
    if hasattr(model, "layers"):
        return model
    from tfmargin.models.io import load_model as load

    return load(model)


def embedding_model(model):
    """The backbone of `model`: the model itself if it maps one image batch to embeddings, else
    its sub-model named "backbone" (or its only nested model that does)."""
    from tfmargin.errors import ModelFileError
    from tfmargin.models.io import find_backbone

    model = load_model(model)
    try:
        return find_backbone(model)
    except ModelFileError as e:
        raise ExportError(str(e)) from None


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
