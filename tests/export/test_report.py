"""The parity and cost report against independent recomputations."""

import json
import os

import numpy as np
import pytest

from tests.evaluate import reference as vref
from tests.export import reference as ref


def _flip_embeddings(backbone, images):
    x = ref.to_float(images).astype(np.float32)
    e = np.asarray(backbone(x, training=False), np.float64) + np.asarray(
        backbone(x[:, :, ::-1], training=False), np.float64)
    return ref.unit(e)


def test_report_numbers(exported, backbone, held_out):
    folder, paths = exported
    report = json.load(open(os.path.join(folder, "report.json")))
    arts = report["artifacts"]
    assert set(arts) == {"keras", "saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic",
                         "tflite_int8", "tflite_int8_io", "qat_int8", "model"}
    for fmt, path in paths.items():
        name = "model" if fmt == "onnx" else fmt
        if os.path.isfile(path):
            assert arts[name]["size_bytes"] == os.path.getsize(path)
    # Float accuracy by insightface's own procedure (tests/evaluate/reference.py).
    images, issame = held_out
    emb = _flip_embeddings(backbone, images)
    acc, _ = vref.calculate_roc(np.arange(0, 4, 0.01), emb[0::2], emb[1::2], issame)
    assert report["float_accuracy"] == np.mean(acc)
    # Cosines of the int8 file recomputed with LiteRT driven by hand.
    n = report["held_out_images"]
    cos = ref.cosines(ref.run_litert(paths["tflite_int8"], images[:n]),
                      ref.keras_embeddings(backbone, images[:n]))
    assert abs(arts["tflite_int8"]["cosine"]["mean"] - cos.mean()) < 1e-3
    assert abs(arts["tflite_int8"]["cosine"]["min"] - cos.min()) < 1e-3
    assert arts["tflite_fp32"]["cosine"]["min"] > 0.9999
    lat = arts["tflite_fp32"]["latency_ms"]["1"]
    assert lat["runs"] == 5 and 0 < lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert arts["model"]["latency_ms"]["1"]["median_ms"] > 0
    # Every goal is stated with its value; a missed one says by how much and why.
    goals = {g["goal"]: g for g in report["goals"]}
    assert any("tflite_int8 latency" in g for g in goals)
    assert any("onnxruntime" in g for g in goals)
    for g in goals.values():
        assert g["met"] or (g["missed_by"] and g["why"])
    ratio = (arts["tflite_int8"]["latency_ms"]["1"]["median_ms"]
             / arts["tflite_fp32"]["latency_ms"]["1"]["median_ms"])
    assert goals["tflite_int8 latency <= 0.45x fp32 (1 thread)"]["value"] == ratio


def test_report_markdown_and_op_lists(exported):
    from tfmargin.export.ops import tflite_ops

    folder, paths = exported
    md = open(os.path.join(folder, "report.md")).read()
    assert "| tflite_int8 |" in md and "## Goals" in md
    ops = tflite_ops(paths["tflite_fp32"])
    line = next(ln for ln in md.splitlines() if ln.startswith("- ops: PAD"))
    assert line == "- ops: " + ", ".join(f"{op} x{n}" for op, n in ops.items())
    # BN folds into the convolutions: no BN-shaped op survives in the fp32 file.
    assert "MUL" not in ops and ops["CONV_2D"] + ops["DEPTHWISE_CONV_2D"] == 22


def _tar_at_far_bruteforce(cos, genuine, far):
    """The best TAR of any threshold t (accept cos >= t) whose FAR is within `far`."""
    best = 0.0
    for t in np.unique(cos):
        if np.mean(cos[~genuine] >= t) <= far:
            best = max(best, float(np.mean(cos[genuine] >= t)))
    return best


def test_low_far_numbers_against_a_brute_force_reference(exported, dataset, train_arrays):
    """TAR@FAR 1e-3 / 1e-4 over every pair of held-out identities for the int8 file: LiteRT
    driven by hand, flip-sum, float64 cosines, every threshold tried. The report's own set is
    small (a FAR it cannot reach is reported as None); the numbers are checked on a set of
    ~2,300 impostor pairs."""
    from tfmargin.export.report import _low_far_goals, low_far_tar

    folder, paths = exported
    report = json.load(open(os.path.join(folder, "report.json")))
    got = report["artifacts"]["tflite_int8"]["low_far"]
    with np.load(dataset / "identification.npz") as z:
        labels = np.concatenate([z["probe_labels"], z["gallery_labels"]] + (
            [z["distractor_labels"]] if "distractor_labels" in z.files else []))
    _, counts = np.unique(labels, return_counts=True)
    pairs = len(labels) * (len(labels) - 1) // 2
    assert got["impostor_pairs"] == pairs - int(np.sum(counts * (counts - 1) // 2))
    assert report["artifacts"]["keras"]["low_far"]["impostor_pairs"] == got["impostor_pairs"]
    for key, far in (("1e-3", 1e-3), ("1e-4", 1e-4)):
        assert (got[key] is None) == (got["impostor_pairs"] * far < 1)

    images, labels, _, _ = train_arrays  # 14 identities: enough impostor pairs for 1e-3
    images = np.clip(np.round(images * 127.5 + 127.5), 0, 255).astype(np.uint8)
    mine = low_far_tar(paths["tflite_int8"], (images, labels))
    e = ref.unit(ref.run_litert(paths["tflite_int8"], images)
                 + ref.run_litert(paths["tflite_int8"], images[:, :, ::-1]))
    i, j = np.triu_indices(len(e), 1)
    cos, genuine = np.sum(e[i] * e[j], axis=1), labels[i] == labels[j]
    assert mine["impostor_pairs"] == int(np.sum(~genuine)) and mine["impostor_pairs"] >= 1000
    assert abs(mine["1e-3"] - _tar_at_far_bruteforce(cos, genuine, 1e-3)) <= 1.5 / genuine.sum()
    # the goal: the int8 drop at 1e-3 against Keras, stated with its value
    keras = {"name": "keras", "kind": "keras", "low_far": {"1e-3": 0.60}, "cosine": {"min": 1}}
    int8 = {"name": "tflite_int8", "kind": "tflite", "low_far": {"1e-3": 0.59},
            "cosine": {"min": 0.99}}
    (goal,) = _low_far_goals({"keras": keras, "tflite_int8": int8})
    assert goal["value"] == pytest.approx(1.0) and not goal["met"] and goal["why"]
    assert "TAR@1e-3 (%)" in open(os.path.join(folder, "report.md")).read()
