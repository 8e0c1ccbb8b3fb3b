"""A backbone small enough for training tests on 2 shared cores (MobileFaceNet takes ~1 s a
step there). Registered as "tiny_test"; subprocess tests call register() too."""

import keras

NAME = "tiny_test"


def tiny(embedding_size=16, input_shape=(112, 112, 3), name=None):
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.AveragePooling2D(4)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(embedding_size, name="embedding_dense")(x)
    x = keras.layers.BatchNormalization(name="embedding_bn")(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name=name or "tiny")


def register():
    from tfmargin.models import backbone_names, register_backbone

    if NAME not in backbone_names():
        register_backbone(NAME, tiny)
