"""Converting the fine-tuned QAT model to an integer TFLite file, and the whole QAT recipe."""

import os
import shutil
import tempfile

import numpy as np

from tfmargin.export.contract import write_tflite
from tfmargin.evaluate.vectors import unit_rows
from tfmargin.export.model import (ExportError, check_input, embedding_model, find_head,
                                   load_model)
from tfmargin.export.ops import check_builtin_ops
from tfmargin.export.qat.annotate import quantize_model
from tfmargin.export.qat.finetune import fine_tune, training_batches
from tfmargin.export.qat.ranges import calibrate_ranges
from tfmargin.export.qat.tf_keras import check_rebuild, rebuild_tf_keras


def convert_qat(qat, integer_io=False, normalize=None, where="qat"):
    """Full-integer TFLite bytes of a fake-quantised tf_keras model."""
    import tensorflow as tf

    from tfmargin.export import graph
    from tfmargin.export.tflite import INTEGER_IO, convert

    io_type = INTEGER_IO[integer_io]
    if normalize is None:
        normalize = io_type is None
    module = tf.Module()
    module.model = qat
    fn = tf.function(graph.embedding_function(qat, "float32", normalize),
                     input_signature=[graph.image_spec("float32")])
    tmp = tempfile.mkdtemp(prefix="tfmargin-qat-")
    try:
        tf.saved_model.save(module, tmp, signatures={"serving_default": fn.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, ["serving_default"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if io_type:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
        return convert(converter, where)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def quantization_aware_training(model, path, data, steps, head=None, teacher=None,
                                batch_size=64, learning_rate=1e-3, integer_io=False,
                                calibration_images=128, freeze_batch_norm=True, seed=0,
                                log=None, card=None, threshold_set=None):
    """Fine-tune a trained student with fake quantisation and write a full-integer TFLite file.

    Args:
      model: the trained Keras training model (backbone + head) or its .keras path; a bare
        backbone needs `head`.
      path: the .tflite to write (atomically).
      data: training batches (see training_batches): a training source path, a dataset or
        iterable of ({"image", "label", "teacher"?}, label), or arrays (images, labels[, teacher]).
      steps: fine-tuning steps (0 = calibrate the ranges and convert only).
      card, threshold_set: the file's TFLite metadata, as in export_tflite.
      teacher: for a path source: the teacher embeddings as train_dataset takes them.
      integer_io: False (float I/O, normalised output), True / "int8" or "uint8".

    Returns a dict: path, losses, custom quantize configs, rebuild error, output agreement.
    """
    where = os.fspath(path)
    if steps < 0:
        raise ExportError(f"QAT: steps must be >= 0, got {steps}")
    model = load_model(model)
    backbone = check_input(embedding_model(model))
    head = head or find_head(model)
    if head is None:
        raise ExportError(f"QAT: model {model.name!r} has no margin head; pass the training model "
                          "(backbone + head) or head=, so that QAT trains with the student's loss")
    float_model = rebuild_tf_keras(backbone, check=False)
    rebuild_error = check_rebuild(backbone, float_model)
    qat, custom = quantize_model(float_model, freeze_batch_norm)
    batches = training_batches(data, batch_size, teacher, seed)
    calib, n = [], 0
    while n < calibration_images:
        images = next(batches)[0]
        calib.append(images)
        n += len(images)
    calib = np.concatenate(calib)[:calibration_images]
    ranges = calibrate_ranges(qat, calib)
    losses = fine_tune(qat, head, batches, steps, learning_rate, log=log)
    content = convert_qat(qat, integer_io, where=where)
    check_builtin_ops(content, where)
    from tfmargin.export.tflite import run_tflite

    probe = calib[:16]
    out = run_tflite(content, probe)
    if not np.all(np.isfinite(out)) or np.allclose(out, out[:1], atol=1e-6):
        raise ExportError(f"{where}: the QAT int8 model gives constant or non-finite embeddings; "
                          "QAT must start from a trained float model")
    ref = np.asarray(qat(probe, training=False), np.float64)
    cos = np.sum(unit_rows(out) * unit_rows(ref), axis=1)
    write_tflite(where, content, card, threshold_set)
    return {"path": where, "steps": steps, "losses": losses, "rebuild_relative_error": rebuild_error,
            "quantize_configs": custom, "calibrated_ranges": ranges,
            "tflite_vs_qat_model_min_cosine": float(cos.min()),
            "freeze_batch_norm": freeze_batch_norm, "learning_rate": learning_rate,
            "batch_size": batch_size, "head": type(head).__name__}
