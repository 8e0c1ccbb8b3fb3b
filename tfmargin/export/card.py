"""model_card.json: what a deployment team needs to know about an exported student.

Fields: architecture (backbone facts, head), embedding size, input contract, training recipe,
teacher, verification results, export settings and the artifacts written. The recipe, teacher
and results come from the caller (the training run knows them); the rest is read from the model.
"""

import os
import time

from tfmargin.atomic import read_json, write_json
from tfmargin.export.model import describe, find_head

CARD_NAME = "model_card.json"
INPUT_CONTRACT = {
    "color": "RGB",
    "size": [112, 112],
    "alignment": "5-point similarity transform to the ArcFace template "
                 "(tfmargin.data.align_face)",
    "saved_model": "uint8 pixels 0..255, (x - 127.5) / 127.5 inside",
    "tflite_float": "float32, (x - 127.5) / 127.5, i.e. [-1, 1]",
    "tflite_int8": "float32 [-1, 1] (quantised inside), or with integer I/O the int8/uint8 "
                   "value q = round(x_float / scale + zero_point) of the file's input tensor",
    "onnx": "float32 [-1, 1], NHWC",
}
CARD_FIELDS = ("training", "teacher", "verification")


def _head_info(model):
    head = find_head(model) if model is not None else None
    if head is None:
        return None
    config = head.get_config()
    keep = ("scale", "m1", "m2", "m3", "m_max", "m_min", "d_max", "clip", "num_classes",
            "embedding_dim")
    return {"class": type(head).__name__, **{k: config[k] for k in keep if k in config}}


def model_card(backbone, model=None, card=None, export=None, artifacts=None):
    """The card as a dict. `card` may hold "training", "teacher", "verification" and anything
    else worth keeping (copied as given); `export` the export settings."""
    card = dict(card or {})
    arch = describe(backbone)
    head = _head_info(model)
    if head:
        arch["head"] = head
    out = {
        "format": 1,
        "architecture": arch,
        "embedding_size": arch["embedding_size"],
        "input": INPUT_CONTRACT,
        "output": "L2-normalised float32 embedding (integer-I/O TFLite: raw, quantised)",
    }
    for field in CARD_FIELDS:
        out[field] = card.pop(field, None)
    out.update(card)
    out["export"] = {**(export or {}), "date": time.strftime("%Y-%m-%d")}
    if artifacts:
        out["artifacts"] = artifacts
    return out


RECIPE_KEYS = ("role", "method", "head", "backbone", "embedding_size", "data", "steps",
               "batch_size", "images_per_identity", "lr", "lr_schedule", "weight_decay",
               "weight_decay_mode", "scale", "margin", "m_max", "m_min", "d_max",
               "softmax_warmup_steps", "margin_ramp_steps", "precision", "seed", "val_bin")


def _last_row(csv_path):
    import csv

    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    return rows[-1] if rows else None


def card_from_run(model_path):
    """Card fields a training run left beside its model (train()'s output folder: config.json,
    best.json, history.csv, and the teacher signal's manifest.json its config names): the
    recipe, the teacher and the data it was distilled on (paths and checksums), and the
    verification numbers. {} when the model does not sit in a training run's folder."""
    run = os.path.dirname(os.path.abspath(os.fspath(model_path)))
    config = read_json(os.path.join(run, "config.json"))
    if not config or "method" not in config:
        return {}
    card = {"training": {k: config[k] for k in RECIPE_KEYS if k in config}}
    card["training"]["run"] = run
    history = _last_row(os.path.join(run, "history.csv"))
    best = read_json(os.path.join(run, "best.json"))
    verification = {}
    if history:
        card["training"]["epochs_run"] = int(history.get("epoch", -1)) + 1
        verification["last_epoch"] = {k: float(v) for k, v in history.items()
                                      if k.startswith("val_") and v not in ("", None)}
    if best:
        verification["best"] = {k: best[k] for k in ("step", "accuracy", "set") if k in best}
    if verification:
        card["verification"] = verification
    signal = config.get("teacher_signal")
    manifest = read_json(os.path.join(signal, "manifest.json")) if signal else None
    if manifest:
        card["teacher"] = {"signal": signal, **{k: manifest[k] for k in ("teacher", "dataset")
                                                if k in manifest}}
    return card


def write_model_card(directory, card):
    return write_json(os.path.join(os.fspath(directory), CARD_NAME), card)
