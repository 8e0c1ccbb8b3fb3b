"""ONNX export through tf2onnx, checked with onnxruntime.

    export_onnx(model, "savedmodels/student/student.onnx", opset=17)

The graph takes float32 NHWC (B, 112, 112, 3) in [-1, 1] ("image") and returns the L2-normalised
embedding ("embedding"): the same contract as the float TFLite files. Grouped convolutions are
tfmargin's GroupedConv2D (depthwise + reshape-sum), which tf2onnx maps to plain ONNX ops.
"""

import contextlib
import logging
import os

import numpy as np

from tfmargin.atomic import write_bytes
from tfmargin.export import graph
from tfmargin.export.model import ExportError, check_input, embedding_model
from tfmargin.export.tflite import interpreter_notice_hidden

DEFAULT_OPSET = 17
MIN_COSINE = 0.9999


def check_onnx(content, backbone, images, where):
    """Run the file in onnxruntime and compare with the Keras model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(content, sess_options=options,
                                   providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: images})[0].astype(np.float64)
    ref = np.asarray(backbone(images, training=False), np.float64)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cos = np.sum(out * ref, axis=1)
    if not np.all(np.isfinite(out)) or cos.min() < MIN_COSINE:
        raise ExportError(f"{where}: onnxruntime disagrees with the Keras model (min cosine "
                          f"{np.nanmin(cos):.6f})")


@contextlib.contextmanager
def _quiet_logger(name, level=logging.WARNING):
    """tf2onnx logs every graph rewrite at INFO: keep its warnings, not its narration."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def export_onnx(model, path, opset=DEFAULT_OPSET, verify=True):
    """Convert `model` (a Keras model, training model or .keras path) to ONNX at `path`
    (written atomically); returns `path`."""
    import tensorflow as tf
    import tf2onnx

    where = os.fspath(path)
    if not isinstance(opset, int) or opset < 13:
        raise ExportError(f"{where}: opset must be an integer >= 13, got {opset!r}")
    backbone = check_input(embedding_model(model))
    spec = [graph.image_spec("float32")]
    fn = tf.function(graph.embedding_function(backbone, "float32", normalize=True),
                     input_signature=spec)
    try:
        with interpreter_notice_hidden(), _quiet_logger("tf2onnx"):
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    except Exception as e:
        raise ExportError(f"{where}: tf2onnx failed: {str(e).splitlines()[0][:300]}") from e
    # Name the batch dimension instead of tf2onnx's generated "unk__N".
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    content = proto.SerializeToString()
    if verify:
        images = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
        check_onnx(content, backbone, images, where)
    write_bytes(where, content)
    return where
