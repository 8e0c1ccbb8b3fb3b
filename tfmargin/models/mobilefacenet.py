"""MobileFaceNet (Chen et al. 2018) in insightface's layout (arcface_torch `mbf`).

`width=1, activation="relu", embedding_size=512` is the MarginDistillation student;
`width=2, activation="prelu"` is arcface_torch's `mbf`.
"""

import keras
from keras import layers

from tfmargin.models.layers import batch_norm, conv_bn


def _bottleneck(x, out_c, hidden, stride, act, name, residual):
    """Inverted residual: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection."""
    shortcut = x
    y = conv_bn(x, hidden, 1, 1, f"{name}_expand", act=act)
    y = conv_bn(y, hidden, 3, stride, f"{name}_dw", groups=hidden, act=act)
    y = conv_bn(y, out_c, 1, 1, f"{name}_project")
    return layers.Add(name=f"{name}_add")([shortcut, y]) if residual else y


def _stage(x, channels, num_blocks, hidden, act, name):
    for i in range(num_blocks):
        x = _bottleneck(x, channels, hidden, 1, act, f"{name}_block{i}", residual=True)
    return x


def mobilefacenet(embedding_size=512, width=1, activation="relu", blocks=(1, 4, 6, 2),
                  input_shape=(112, 112, 3), name=None):
    """MobileFaceNet backbone: float32 images in [-1, 1] -> (batch, embedding_size) embeddings.

    The hidden (expansion) widths 128/256/512 are fixed, as in insightface; `width` scales the
    64/128 block channels. The head is the global depthwise conv (GDC, 7x7) + linear + BN.
    """
    if len(blocks) != 4:
        raise ValueError(f"blocks must have 4 entries, got {blocks!r}")
    c1, c2 = 64 * width, 128 * width
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, c1, 3, 2, "stem", act=activation)
    if blocks[0] == 1:
        x = conv_bn(x, c1, 3, 1, "stem_dw", groups=64, act=activation)
    else:
        x = _stage(x, c1, blocks[0], 128, activation, "stage0")
    x = _bottleneck(x, c1, 128, 2, activation, "down1", residual=False)
    x = _stage(x, c1, blocks[1], 128, activation, "stage1")
    x = _bottleneck(x, c2, 256, 2, activation, "down2", residual=False)
    x = _stage(x, c2, blocks[2], 256, activation, "stage2")
    x = _bottleneck(x, c2, 512, 2, activation, "down3", residual=False)
    x = _stage(x, c2, blocks[3], 256, activation, "stage3")
    x = conv_bn(x, 512, 1, 1, "conv_sep", act=activation)
    # GDC: a 7x7 depthwise conv over the whole 7x7 map keeps spatial weighting that global
    # average pooling would throw away (the centre of a face matters more than its border).
    x = conv_bn(x, 512, 7, 1, "gdc", groups=512, pad=False)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(embedding_size, use_bias=False, name="embedding_dense")(x)
    x = batch_norm("embedding_bn")(x)
    # Float32 out under mixed precision: heads, distances and exporters all want float32.
    outputs = layers.Activation("linear", dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name=name or f"mobilefacenet_w{width}_{activation}")
