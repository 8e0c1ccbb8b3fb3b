"""Bench row: what quantisation buys the paper's student on this CPU, and what it costs.

Subject: the full-integer int8 TFLite file of the MarginDistillation student (MobileFaceNet
width 1, ReLU, 512-d; 221 M MACs), in LiteRT with XNNPACK, one thread.
Baseline: the fp32 TFLite file of the same model, same interpreter, same process, timed
alternately. Goal (export issue): int8 <= 0.45x fp32. Also reported: 2-thread latencies,
onnxruntime fp32 on the same model (goal: TFLite fp32 no slower), and, when a trained model and
a held-out .bin are given (`model=`, `test_bin=`), the verification accuracy of float and int8
(goal: within 0.2 points), and with an identification set of unseen identities (`held_out=`)
TAR@FAR 1e-3 / 1e-4 over all its pairs (goal: int8 within 0.5 points at 1e-3); with random
weights accuracy is not measured.

    python -m benchmarks.run --rows=export
"""

import os
import tempfile

import numpy as np

from benchmarks.common import result

NAME = "export"
DESCRIPTION = ("MobileFaceNet-512 (ReLU) int8 vs fp32 TFLite latency (LiteRT/XNNPACK, 1 thread), "
               "with onnxruntime fp32 and int8 accuracy")
INT8_GOAL = 0.45


def _calibration(quick, seed=0):
    """Face-like calibration images: aligned synthetic faces (tfmargin.datasets.synthetic)."""
    from tfmargin.data.images import decode_images
    from tfmargin.datasets.synthetic import generate

    identities, per_identity = (2, 4) if quick else (20, 10)
    encoded = [jpeg for _, images in generate(seed, range(identities), per_identity)
               for jpeg in images]
    return decode_images(encoded)


def _random_student(quick):
    """The student with random weights whose activations neither vanish nor explode: fresh
    Glorot kernels under identity BatchNorm shrink the embedding to ~1e-7, where float rounding
    decides every cosine; kernels get N(0, 0.1) noise, as a trained net's are O(0.1)."""
    import keras

    from tfmargin.models import mobilefacenet

    keras.utils.set_random_seed(0)
    # quick: one block per stage (same layer types, a fraction of the conversion time)
    model = mobilefacenet(blocks=(1, 1, 1, 1)) if quick else mobilefacenet()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        values = [w + rng.normal(0, 0.1, w.shape).astype(w.dtype) if w.ndim == 4 else w
                  for w in layer.get_weights()]
        if values:
            layer.set_weights(values)
    return model


def _alternate(paths, threads, runs, warmup, rounds=2):
    """Median latencies, the files timed in turns so that load drift hits each alike."""
    from tfmargin.export.latency import tflite_latency

    samples = {name: [] for name in paths}
    for _ in range(rounds):
        for name, path in paths.items():
            samples[name].append(tflite_latency(path, threads, runs // rounds, warmup)["median_ms"])
    return {name: float(np.median(v)) for name, v in samples.items()}


def run(quick=False, model=None, test_bin=None, runs=None, held_out=None, **_):
    from tfmargin.export import TFLiteSource, export_onnx, export_tflite
    from tfmargin.export.latency import onnx_latency
    from tfmargin.export.model import describe, embedding_model

    runs = runs or (10 if quick else 200)
    warmup = 3 if quick else 20
    if model:
        backbone = embedding_model(model)
        weights = f"trained: {model}"
    else:
        backbone = _random_student(quick)
        weights = "random weights: accuracy not measured"
    calib = _calibration(quick)
    details = {"model": describe(backbone), "weights": weights, "runs": runs, "warmup": warmup,
               # latency on a shared machine is only as good as its quiet: say how busy it was
               "load_average_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {m: os.path.join(tmp, f"{m}.tflite") for m in ("fp32", "int8")}
        with TFLiteSource(backbone) as source:
            export_tflite(source, paths["fp32"], "fp32")
            export_tflite(source, paths["int8"], "int8", representative=calib,
                          num_images=len(calib))
        onnx_path = export_onnx(backbone, os.path.join(tmp, "model.onnx"))
        latency = {}
        for threads in (1, 2):
            t = _alternate(paths, threads, runs, warmup)
            t["onnx_fp32"] = onnx_latency(onnx_path, threads, runs, warmup)["median_ms"]
            latency[str(threads)] = t
        details["latency_ms"] = latency
        details["sizes_bytes"] = {m: os.path.getsize(p) for m, p in paths.items()}
        details["sizes_bytes"]["onnx"] = os.path.getsize(onnx_path)
        one = latency["1"]
        details["tflite_fp32_over_onnx"] = one["fp32"] / one["onnx_fp32"]
        details["tflite_fp32_no_slower_than_onnx"] = bool(one["fp32"] <= one["onnx_fp32"])
        details["load_average_after"] = list(os.getloadavg())
        if model and test_bin:
            from tfmargin.evaluate.sets import evaluate_sets, load_sets

            sets = load_sets({"test": test_bin})
            acc = {name: evaluate_sets(p, sets)["test"].accuracy
                   for name, p in {"keras": backbone, **paths}.items()}
            details["accuracy"] = acc
            details["int8_accuracy_drop_points"] = 100 * (acc["keras"] - acc["int8"])
            details["int8_accuracy_met"] = bool(details["int8_accuracy_drop_points"] <= 0.2)
        if model and held_out:  # int8 losses hide at low FAR: every pair of unseen people
            from tfmargin.evaluate.identification_set import labelled_images
            from tfmargin.export.report import LOW_FAR_DROP_GOAL, low_far_tar

            pairs = labelled_images(held_out)
            low = {name: low_far_tar(p, pairs)
                   for name, p in {"keras": backbone, **paths}.items()}
            details["tar_at_far"] = low
            for key in ("1e-3", "1e-4"):  # None where the set cannot reach the FAR
                a, b = low["keras"][key], low["int8"][key]
                details[f"int8_tar_{key}_drop_points"] = (None if a is None or b is None
                                                          else 100 * (a - b))
            drop = details["int8_tar_1e-3_drop_points"]
            details["int8_low_far_met"] = None if drop is None else bool(drop <= LOW_FAR_DROP_GOAL)
    command = f"python -m benchmarks.run --rows={NAME}"
    if model:
        command += f" --model={model}" + (f" --test_bin={test_bin}" if test_bin else "")
        command += f" --held_out={held_out}" if held_out else ""
    return result(NAME, subject="int8 TFLite (full integer), 1 thread",
                  baseline="fp32 TFLite, 1 thread", value=one["int8"],
                  baseline_value=one["fp32"], unit="ms/image", higher_is_better=False,
                  goal=INT8_GOAL, details=details, command=command)
