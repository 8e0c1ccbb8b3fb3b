"""Backbones: the MobileFaceNet student and the IResNet teacher, and a registry by name."""

from tfmargin.models.iresnet import iresnet
from tfmargin.models.layers import GroupedConv2D
from tfmargin.models.mobilefacenet import mobilefacenet
from tfmargin.models.profile import count_macs, count_params
from tfmargin.models.registry import backbone_names, build_backbone, register_backbone

__all__ = ["GroupedConv2D", "backbone_names", "build_backbone", "count_macs", "count_params",
           "iresnet", "mobilefacenet", "register_backbone"]
