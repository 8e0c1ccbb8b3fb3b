"""Export a trained student for deployment, and prove each artifact computes what Keras does.

    from tfmargin.export import (export_saved_model, export_tflite, export_onnx,
                                 quantization_aware_training, parity_report, export_all)
    export_saved_model(model, "savedmodels/student")                    # uint8 in, unit out
    export_tflite(model, "savedmodels/student/student_int8.tflite", "int8",
                  representative="data/synthetic/train.rec", num_images=200)
    export_onnx(model, "savedmodels/student/student.onnx")
    report = parity_report("savedmodels/student", model, test_bin="data/synthetic/test.bin")

One concept per module: graph (the converted functions and the I/O contract), saved_model,
tflite, qat (the only tf_keras / tensorflow-model-optimization user), onnx, representative
(calibration images), ops (op lists, Flex check), npu (a full-integer file against NNAPI's and
the Edge TPU's published op lists; npu_ops holds the lists), latency, report (parity and cost), card
(model_card.json), run (every format into one folder, as the CLI does). Every file is written
atomically: a failed export leaves nothing under its final name.
"""

import importlib

_EXPORTS = {
    "ExportError": "tfmargin.export.model",
    "embedding_model": "tfmargin.export.model",
    "export_saved_model": "tfmargin.export.saved_model",
    "export_tflite": "tfmargin.export.tflite",
    "TFLiteSource": "tfmargin.export.tflite",
    "export_onnx": "tfmargin.export.onnx",
    "quantization_aware_training": "tfmargin.export.qat",
    "rebuild_tf_keras": "tfmargin.export.qat",
    "TFKerasMismatchError": "tfmargin.export.qat",
    "calibration_images": "tfmargin.export.representative",
    "FlexOpsError": "tfmargin.export.ops",
    "check_builtin_ops": "tfmargin.export.ops",
    "artifact_ops": "tfmargin.export.ops",
    "tflite_ops": "tfmargin.export.ops",
    "tflite_io": "tfmargin.export.ops",
    "npu_readiness": "tfmargin.export.npu",
    "model_card": "tfmargin.export.card",
    "tflite_latency": "tfmargin.export.latency",
    "onnx_latency": "tfmargin.export.latency",
    "parity_report": "tfmargin.export.report",
    "write_report": "tfmargin.export.report",
    "FORMATS": "tfmargin.export.run",
    "export_all": "tfmargin.export.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # TensorFlow, tf2onnx and tfmot load only when an exporter is first used.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
