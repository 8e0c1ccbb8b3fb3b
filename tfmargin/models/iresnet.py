"""IResNet (insightface's LResNet-E-IR, arcface_torch `r18`..`r100`): the teacher.

Pre-activation-style IBasicBlock (BN -> conv -> BN -> PReLU -> conv -> BN), PReLU stem, and
the "E" output block BN -> dropout -> FC -> BN (BN gamma fixed to 1, as insightface).
"""

import keras
from keras import layers

from tfmargin.models.layers import activation, batch_norm, conv_bn, pad_for

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


def _block(x, planes, stride, name):
    shortcut = x
    y = batch_norm(f"{name}_bn1")(x)
    y = layers.Conv2D(planes, 3, padding="same", use_bias=False, name=f"{name}_conv1")(y)
    y = batch_norm(f"{name}_bn2")(y)
    y = activation("prelu", f"{name}_prelu")(y)
    y, padding = pad_for(y, 3, stride, f"{name}_conv2")
    y = layers.Conv2D(planes, 3, strides=stride, padding=padding, use_bias=False,
                      name=f"{name}_conv2")(y)
    y = batch_norm(f"{name}_bn3")(y)
    if stride != 1 or shortcut.shape[-1] != planes:
        shortcut = conv_bn(shortcut, planes, 1, stride, f"{name}_down")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def iresnet(depth, embedding_size=512, dropout=0.0, input_shape=(112, 112, 3), name=None):
    """IResNet-`depth` backbone: float32 images in [-1, 1] -> (batch, embedding_size)."""
    if depth not in STAGES:
        raise ValueError(f"iresnet depth must be one of {sorted(STAGES)}, got {depth}")
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn(inputs, 64, 3, 1, "stem", act="prelu")
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), STAGES[depth]), start=1):
        for i in range(blocks):
            x = _block(x, planes, 2 if i == 0 else 1, f"layer{stage}_block{i}")
    x = batch_norm("out_bn")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(embedding_size, name="fc")(x)
    x = batch_norm("features", scale=False)(x)
    outputs = layers.Activation("linear", dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name=name or f"iresnet{depth}")
