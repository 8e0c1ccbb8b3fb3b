"""The functions every artifact is converted from, and where each does its normalisation.

One place decides the input contract and the output of each artifact:

* `uint8` input: raw RGB pixels; (x - 127.5) / 127.5 happens inside (the SavedModel).
* `float32` input: pixels already mapped to [-1, 1] by (x - 127.5) / 127.5 (TFLite float and
  float-I/O int8 files, ONNX), as the Keras model takes them.
* `normalize=True`: the output is the L2-normalised embedding, written as square / sum / rsqrt
  (`tfmargin.margins.l2_normalize`). The TFLite converter (TF 2.21) fuses that into one
  L2_NORMALIZATION op; in full-integer files the op is int8, so unit norms hold to ~0.5% (the
  output's quantisation step) and a host that needs exact unit vectors renormalises.
* `normalize=False`: the raw embedding (full-integer files for NPUs, whose whole graph must be
  int8; the host normalises, and cosine similarity does not depend on it).

Functions are traced through keras.export.ExportArchive, which stores the Keras 3 variables in
a SavedModel that TFLite, tf2onnx and TF Serving all read. (A concrete function of a Keras 3
model handed to the TFLite converter directly keeps its weights as resource variables and
converts into a file without weights that outputs NaN.)
"""

from tfmargin.margins import l2_normalize
from tfmargin.pixels import to_model_input_tensor

INPUT_NAME = "image"
OUTPUT_NAME = "embedding"


def image_spec(input_dtype, image_size=112, batch_size=None):
    """The input signature; `batch_size` fixes the batch (None: any). A fixed batch keeps the
    graph free of the SHAPE / STRIDED_SLICE / PACK ops that a dynamic batch adds in front of
    the flatten, which NPU compilers such as the Edge TPU's do not take."""
    import tensorflow as tf

    if input_dtype not in ("uint8", "float32"):
        raise ValueError(f"input_dtype must be 'uint8' or 'float32', got {input_dtype!r}")
    return tf.TensorSpec([batch_size, image_size, image_size, 3], input_dtype, name=INPUT_NAME)


def embedding_function(backbone, input_dtype="float32", normalize=True):
    """image batch -> {"embedding": (B, D) float32} with the contract above."""
    import tensorflow as tf

    def serve(image):
        x = image
        if input_dtype == "uint8":
            x = to_model_input_tensor(x)
        e = tf.cast(backbone(x, training=False), tf.float32)
        return {OUTPUT_NAME: l2_normalize(e) if normalize else e}

    return serve


def write_archive(backbone, directory, input_dtype="float32", normalize=True, batch_size=None):
    """A SavedModel at `directory` with signatures "serve" and "serving_default"."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(backbone)
    archive.add_endpoint("serve", embedding_function(backbone, input_dtype, normalize),
                         input_signature=[image_spec(input_dtype,
                                                     int(backbone.inputs[0].shape[1]),
                                                     batch_size)])
    archive.write_out(directory, verbose=False)
    return directory
