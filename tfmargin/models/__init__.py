"""Backbones: the MobileFaceNet student and the IResNet teacher, a registry by name, and the
one loader of tfmargin model files (`load_model`, `load_backbone`)."""

from tfmargin.models.io import find_backbone, load_backbone, load_model
from tfmargin.models.iresnet import iresnet
from tfmargin.models.layers import GroupedConv2D
from tfmargin.models.mobilefacenet import mobilefacenet
from tfmargin.models.profile import count_macs, count_params
from tfmargin.models.registry import backbone_names, build_backbone, register_backbone

__all__ = ["GroupedConv2D", "backbone_names", "build_backbone", "count_macs", "count_params",
           "find_backbone", "iresnet", "load_backbone", "load_model", "mobilefacenet",
           "register_backbone"]
