"""A teacher's class centers held by a head as a frozen (non-trainable) weight."""

import numpy as np


def resolve(layer_name, centers, num_classes, embedding_dim):
    """(centers as float32 or None, num_classes, embedding_dim) from either the array or,
    when a saved model is loaded, the sizes in its config (the values come from the weights)."""
    if centers is not None:
        centers = np.asarray(centers, dtype="float32")
        if centers.ndim != 2:
            raise ValueError(f"{layer_name}: centers must be (embedding_dim, num_classes), "
                             f"got shape {centers.shape}")
        embedding_dim, num_classes = centers.shape
    elif num_classes is None or embedding_dim is None:
        raise ValueError(f"{layer_name}: give the teacher's centers (or, when loading, "
                         "num_classes and embedding_dim)")
    return centers, int(num_classes), int(embedding_dim)


def check_dims(layer_name, embedding_dim, **dims):
    """A clear error when an embedding does not live in the centers' space."""
    for who, dim in dims.items():
        if dim is not None and dim != embedding_dim:
            raise ValueError(
                f"{layer_name}: {who} embedding size {dim} does not match the teacher centers' "
                f"{embedding_dim}; the student must embed into the teacher's space")


def add_frozen(layer, initial, embedding_dim, num_classes, name="centers"):
    weight = layer.add_weight(shape=(embedding_dim, num_classes), initializer="zeros",
                              trainable=False, name=name)
    if initial is not None:
        weight.assign(initial)
    return weight
