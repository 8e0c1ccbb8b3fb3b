"""Building blocks shared by the backbones.

Convolutions mirror PyTorch's symmetric padding (insightface's reference weights and layouts are
PyTorch / MXNet): stride-1 convs use "same" (identical for odd kernels), stride-2 convs pad one
pixel on every side explicitly, because Keras "same" would pad only bottom/right.
"""

import keras
from keras import layers, ops

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def activation(kind, name):
    """ReLU or PReLU with one slope per channel (PyTorch's PReLU(num_parameters=C))."""
    if kind == "relu":
        return layers.ReLU(name=name)
    if kind == "prelu":
        return layers.PReLU(shared_axes=[1, 2], name=name)
    raise ValueError(f"activation must be 'relu' or 'prelu', got {kind!r}")


def batch_norm(name, scale=True):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, scale=scale, name=name)


def pad_for(x, kernel, stride, name):
    """Explicit symmetric padding where Keras 'same' would differ from PyTorch (stride > 1)."""
    if stride > 1 and kernel > 1:
        return layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x), "valid"
    return x, ("same" if kernel > 1 else "valid")


@keras.saving.register_keras_serializable(package="tfmargin")
class GroupedConv2D(layers.Layer):
    """A grouped convolution built from ops every exporter accepts.

    Keras' Conv2D(groups>1) reaches ONNX as an unsupported call. Here the convolution is a
    depthwise conv with depth_multiplier = filters/groups followed by a sum over the input
    channels of each group (a reshape + reduce): the same function, the same parameter count
    and the same multiply-adds as a grouped conv, and TFLite/ONNX/tfmot all know both ops.
    Depthwise output channel c*m + j holds input channel c convolved with the j-th filter;
    output channel g*m + j sums those of the group's input channels.
    """

    def __init__(self, filters, kernel_size, groups, strides=1, padding="same", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.groups = filters, kernel_size, groups
        self.strides, self.padding = strides, padding
        self.depthwise = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(f"{self.name}: channels {channels} and filters {self.filters} "
                             f"must both divide by groups {self.groups}")
        self.depthwise = layers.DepthwiseConv2D(
            self.kernel_size, strides=self.strides, padding=self.padding,
            depth_multiplier=self.filters // self.groups, use_bias=False,
            dtype=self.dtype_policy, name="depthwise")
        self.depthwise.build(input_shape)

    def call(self, x):
        y = self.depthwise(x)
        h, w = ops.shape(y)[1], ops.shape(y)[2]
        in_per_group = y.shape[-1] // self.filters  # = channels / groups
        m = self.filters // self.groups
        # (B, H*W*groups, in_per_group, m): at most 4-D, which every NPU converter takes.
        y = ops.reshape(y, (-1, h * w * self.groups, in_per_group, m))
        y = ops.sum(y, axis=2)
        return ops.reshape(y, (-1, h, w, self.filters))

    def compute_output_shape(self, input_shape):
        return self.depthwise.compute_output_shape(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "groups": self.groups, "strides": self.strides, "padding": self.padding}


def conv_bn(x, filters, kernel, stride, name, groups=1, act=None, pad=True):
    """Conv (no bias) + BN (+ activation): insightface's ConvBlock / LinearBlock.
    pad=False is PyTorch's padding=0 (the GDC head)."""
    x, padding = pad_for(x, kernel, stride, name) if pad else (x, "valid")
    channels = x.shape[-1]
    if groups == 1:
        x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False,
                          name=f"{name}_conv")(x)
    elif groups == channels and filters == channels:
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False,
                                   name=f"{name}_dwconv")(x)
    else:
        x = GroupedConv2D(filters, kernel, groups, strides=stride, padding=padding,
                          name=f"{name}_gconv")(x)
    x = batch_norm(f"{name}_bn")(x)
    if act is not None:
        x = activation(act, f"{name}_act")(x)
    return x
