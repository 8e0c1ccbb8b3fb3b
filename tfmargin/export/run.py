"""Every requested format into one folder, then the model card and the parity report: what
`python -m tfmargin.cli.export` runs, callable from a notebook.

    export_all("student.keras", "savedmodels/student",
               formats=["saved_model", "tflite_fp32", "tflite_int8", "onnx"],
               representative="data/synthetic/train.rec", test_bin="data/synthetic/test.bin")

Folder layout (savedmodels/README.md): saved_model/, model.keras, <format>.tflite, model.onnx,
model_card.json, report.json, report.md.
"""

import os
import time

from tfmargin.export.model import ExportError, check_input, embedding_model, load_model

FORMATS = ("saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
           "tflite_int8_io", "qat_int8", "onnx")
ONNX_FILE = "model.onnx"


def artifact_path(output, fmt):
    if fmt == "saved_model":
        return os.path.join(output, "saved_model")
    if fmt == "onnx":
        return os.path.join(output, ONNX_FILE)
    return os.path.join(output, f"{fmt}.tflite")


def check_formats(formats):
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"formats: unknown {', '.join(unknown) or '(none given)'}; choose from "
                          f"{', '.join(FORMATS)}")
    return formats


def export_all(model, output, formats=FORMATS, representative=None, num_images=200,
               integer_io="int8", qat_data=None, qat_steps=0, teacher=None, qat_batch_size=64,
               qat_learning_rate=1e-3, opset=17, test_bin=None, report=True, latency_runs=200,
               threads=(1, 2), card=None, command=None, log=print, threshold_set=None,
               held_out=None, integer_io_batch=1):
    """Export `model` to each of `formats` under `output`; returns {format: path} (and writes
    the report when `report`). Every .tflite carries TFLite metadata with the card and its
    contract; `threshold_set` (a held-out .bin or identification set) gives the cosine
    thresholds at FAR 1e-3 / 1e-4 measured with each file; `held_out` (an identification set)
    adds TAR@FAR 1e-3 / 1e-4 of every artifact to the report. Arguments as in export_tflite / quantization_aware_training /
    export_onnx / parity_report; `integer_io` is the I/O type of tflite_int8_io and
    `integer_io_batch` its fixed batch (the NPU file: static shapes; None keeps it dynamic;
    the report lists its ops against NNAPI's and the Edge TPU's). When `model` is
    a path inside a training run's folder, the card's training, teacher and verification fields
    come from that run (card_from_run); fields given in `card` win."""
    from tfmargin.export.card import card_from_run, model_card, write_model_card
    from tfmargin.export.saved_model import export_saved_model, save_embedding_model
    from tfmargin.export.tflite import TFLiteSource, export_tflite

    formats = check_formats(formats)
    needs_calibration = {"tflite_int8", "tflite_int8_io"} & set(formats)
    if needs_calibration and representative is None:
        raise ExportError(f"{', '.join(sorted(needs_calibration))} need representative images "
                          "(--representative)")
    if "qat_int8" in formats and qat_data is None:
        raise ExportError("qat_int8 needs training data (--qat_data)")
    output = os.fspath(output)
    if isinstance(model, (str, os.PathLike)):  # a training run's folder tells its story
        card = {**card_from_run(model), **(card or {})} or None
    model = load_model(model)
    backbone = check_input(embedding_model(model))
    settings = {"formats": formats, "calibration_images": num_images,
                "representative": representative if isinstance(representative, str) else
                "in-memory images", "integer_io": integer_io,
                "integer_io_batch": integer_io_batch, "opset": opset}
    paths, details = {}, {}
    file_card = model_card(backbone, model, card, settings)  # what each .tflite carries
    started = time.perf_counter()
    with TFLiteSource(model) as source:
        for fmt in formats:
            path = artifact_path(output, fmt)
            log(f"export {fmt} -> {path}")
            if fmt == "saved_model":
                export_saved_model(model, output, card=card, export_settings=settings)
            elif fmt == "onnx":
                from tfmargin.export.onnx import export_onnx

                export_onnx(model, path, opset=opset)
            elif fmt == "qat_int8":
                from tfmargin.export.qat import quantization_aware_training

                details[fmt] = quantization_aware_training(
                    model, path, qat_data, qat_steps, teacher=teacher, batch_size=qat_batch_size,
                    learning_rate=qat_learning_rate, log=log, card=file_card,
                    threshold_set=threshold_set)
            else:
                mode = fmt.split("_")[1]
                export_tflite(source, path, mode, representative=representative,
                              integer_io=integer_io if fmt == "tflite_int8_io" else False,
                              num_images=num_images, card=file_card,
                              threshold_set=threshold_set,
                              batch_size=integer_io_batch if fmt == "tflite_int8_io" else None)
            paths[fmt] = path
    if "saved_model" not in formats:
        save_embedding_model(backbone, output)
    settings["seconds"] = round(time.perf_counter() - started, 1)
    if details:
        settings["qat"] = {k: {kk: vv for kk, vv in v.items() if kk != "losses"}
                           for k, v in details.items()}
        settings["qat"]["qat_int8"]["final_loss"] = (details["qat_int8"]["losses"] or [None])[-1]
    artifacts = {fmt: os.path.relpath(p, output) for fmt, p in paths.items()}
    write_model_card(output, model_card(backbone, model, card, settings, artifacts))
    if report:
        from tfmargin.export.report import parity_report

        log("measuring parity, accuracy and latency ...")
        parity_report(output, model, test_bin=test_bin, threads=threads, runs=latency_runs,
                      output_dir=output, command=command, held_out=held_out)
    return paths
