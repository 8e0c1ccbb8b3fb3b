"""Backbones by name, so that flags and configs can name a network."""

import functools

from tfmargin.models.iresnet import STAGES, iresnet
from tfmargin.models.mobilefacenet import mobilefacenet

_BACKBONES = {
    # The MarginDistillation student (docs/method.md): width 1, ReLU, 512-d.
    "mobilefacenet": mobilefacenet,
    # arcface_torch's `mbf` and `mbf_large`.
    "mbf": functools.partial(mobilefacenet, width=2, activation="prelu"),
    "mbf_large": functools.partial(mobilefacenet, width=4, activation="prelu", blocks=(2, 8, 12, 4)),
}
for _depth in STAGES:
    _BACKBONES[f"iresnet{_depth}"] = functools.partial(iresnet, _depth)
    _BACKBONES[f"r{_depth}"] = _BACKBONES[f"iresnet{_depth}"]  # arcface_torch's names


def backbone_names():
    return sorted(_BACKBONES)


def register_backbone(name, builder):
    """Make `build_backbone(name, ...)` call `builder(**kwargs) -> keras.Model`."""
    if name in _BACKBONES:
        raise ValueError(f"backbone {name!r} is already registered")
    _BACKBONES[name] = builder


def build_backbone(name, /, **kwargs):
    """Build a registered backbone, e.g. build_backbone("iresnet50", embedding_size=512).
    `name` is positional-only, so `name=` in kwargs names the Keras model."""
    try:
        builder = _BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(backbone_names())}") from None
    return builder(**kwargs)
