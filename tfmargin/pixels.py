"""The input contract of every tfmargin model, in one place: RGB pixels p in 0..255 enter a
model as x = (p - 127.5) / 127.5, in [-1, 1] (insightface's convention, which MS1M teachers
were trained with).

`to_model_input` (numpy) and `to_model_input_tensor` (TensorFlow graphs, e.g. an exported
SavedModel's uint8 signature) compute exactly that; `to_pixels` inverts it (exact for
uint8: (p - 127.5) / 127.5 of a uint8 is exact in float32, so rounding gives the bytes back).
The tf.data pipeline computes the same values with one Dequantize op
(`tfmargin.data.pipeline.normalize`, tested equal to `to_model_input`). `rescaling()` is the
same mapping as a Keras layer, for models that take raw pixels (float rounding may differ from
`to_model_input` by one ulp).
"""

import numpy as np

CENTER = 127.5


def to_model_input(images):
    """uint8 (or float) pixels 0..255 -> float32 (p - 127.5) / 127.5."""
    return (np.asarray(images).astype(np.float32) - CENTER) / CENTER


def to_pixels(x):
    """The inverse of to_model_input: float [-1, 1] -> uint8 0..255, rounded and clipped."""
    return np.clip(np.round(np.asarray(x) * CENTER + CENTER), 0, 255).astype(np.uint8)


def to_model_input_tensor(images):
    """to_model_input inside a TensorFlow graph."""
    import tensorflow as tf

    return (tf.cast(images, tf.float32) - CENTER) / CENTER


def rescaling(name="pixels_to_model_input"):
    """A keras.layers.Rescaling with the same mapping: p / 127.5 - 1."""
    import keras

    return keras.layers.Rescaling(1.0 / CENTER, offset=-1.0, name=name)


def quantize_input(x, scale, zero_point, dtype):
    """Model inputs x (float, [-1, 1]) as the integer tensor of a quantised file holds them:
    q = floor(x / scale + zero_point + 1/2), clipped to the dtype. Rounding half up, computed in
    float64 with a nudge of 1e-3 of a step (float32 inputs and scales miss the half by ~1e-5), because for the usual scale 2/255 and zero point -1 every pixel
    lands exactly on a half (q = p - 128.5 before rounding): half-to-even rounding (numpy's
    round) would merge neighbouring pixels into one code, where half-up keeps all 256 (q = p -
    128), the mapping an app computes from the raw bytes."""
    info = np.iinfo(dtype)
    q = np.floor(np.asarray(x, np.float64) / float(scale) + float(zero_point) + 0.5 + 1e-3)
    return np.clip(q, info.min, info.max).astype(dtype)
