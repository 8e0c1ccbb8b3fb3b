"""What an app must know to use an exported `.tflite`, measured from the file and written into
it as TFLite metadata (tfmargin.export.metadata).

    add_metadata("savedmodels/student/tflite_int8.tflite", card=card,
                 threshold_set="data/demo/val.bin")

The contract: input tensor (NHWC, RGB, 112x112, (x - 127.5) / 127.5, or the integer tensor's
scale and zero point), the alignment template, output (size, L2-normalised or raw), flip-sum
(the reported accuracy embeds each face and its mirror image and adds the two), and the
cosine a pair must reach at FAR 1e-3 and 1e-4, measured with this very file on a held-out set:
all pairs of a labelled identification set (millions of impostor pairs), or the pairs of a
verification `.bin` (a FAR is only reported where the set has 10 / FAR impostor pairs).
"""

import json
import os

import numpy as np

from tfmargin.atomic import write_bytes
from tfmargin.evaluate.sets import far_label
from tfmargin.export.metadata import CARD_FILE, attach_metadata, metadata_flatbuffer

FARS = (1e-3, 1e-4)
MIN_FALSE_ACCEPTS = 10  # a FAR is resolved when the set allows this many false accepts


def _bin_thresholds(embedder, path, fars):
    from tfmargin.evaluate import embed
    from tfmargin.evaluate.roc import roc_curve
    from tfmargin.evaluate.sets import load_sets

    images, issame = load_sets({"set": path})["set"]
    e = embed(embedder, images).astype(np.float64)
    scores = np.sum(e[0::2] * e[1::2], axis=1)
    fpr, tpr, cuts = roc_curve(scores, issame)
    impostors = int(np.sum(~np.asarray(issame, bool)))
    out = {}
    for far in fars:
        if impostors * far < MIN_FALSE_ACCEPTS:
            out[far_label(far)] = {"cosine": None, "why": f"{impostors} impostor pairs resolve "
                                  f"FAR down to {MIN_FALSE_ACCEPTS / impostors:.0e} only"}
            continue
        j = int(np.searchsorted(fpr, far, side="right")) - 1
        out[far_label(far)] = {"cosine": float(cuts[j]), "tar": float(tpr[j]),
                              "far": float(fpr[j]), "impostor_pairs": impostors}
    return out


def _pairwise_thresholds(embedder, path, fars):
    from tfmargin.evaluate import embed, pairwise_verification
    from tfmargin.evaluate.identification_set import labelled_images

    images, labels = labelled_images(path)
    r = pairwise_verification(embed(embedder, images), labels, fars=fars)
    out = {}
    for far in fars:
        if r.impostor_pairs * far < MIN_FALSE_ACCEPTS:
            out[far_label(far)] = {"cosine": None, "why": f"{r.impostor_pairs} impostor pairs "
                                  f"resolve FAR down to {MIN_FALSE_ACCEPTS / r.impostor_pairs:.0e}"}
            continue
        # pairwise accepts a pair whose cosine is strictly above its threshold: the smallest
        # float64 above it is the cosine to reach (>=), the convention of roc_curve
        out[far_label(far)] = {"cosine": float(np.nextafter(r.thresholds[far], np.inf)),
                              "tar": float(r.tar_at_far[far]), "far": float(r.far_achieved[far]),
                              "impostor_pairs": int(r.impostor_pairs)}
    return out


def cosine_thresholds(model, threshold_set, fars=FARS):
    """{"1e-3": {"cosine", "tar", "far", "impostor_pairs"} | {"cosine": None, "why"}, ...}:
    the cosine (of flip-sum embeddings by `model`) a pair must reach to be accepted at each
    FAR, on `threshold_set` (a verification .bin, or an identification set .npz / directory)."""
    from tfmargin.evaluate import load_embedder

    embedder = load_embedder(model)
    path = os.fspath(threshold_set)
    if path.endswith(".bin"):
        out = _bin_thresholds(embedder, path, fars)
    else:
        out = _pairwise_thresholds(embedder, path, fars)
    return {"set": path, "flip_sum": True, **out}


def _is_normalised(path):
    """The graph ends in L2 normalisation (the converter fuses it into one op), or its float
    outputs have unit norm (an int8 output of a unit vector is within a few percent)."""
    from tfmargin.evaluate.artifacts import TFLiteEmbedder
    from tfmargin.export.ops import tflite_ops

    if "L2_NORMALIZATION" in tflite_ops(path):
        return True
    embedder = TFLiteEmbedder(path)
    probe = np.random.default_rng(0).uniform(-1, 1, (2, 112, 112, 3)).astype(np.float32)
    out = np.asarray(embedder(probe), np.float64)
    return bool(np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=5e-2))


def contract_of(path, thresholds=None):
    """The contract of the .tflite at `path`, read from the file (tensor types, quantisation,
    output size; whether outputs come out L2-normalised is measured on two random inputs)."""
    from tfmargin.data.align import ARCFACE_TEMPLATE
    from tfmargin.export.ops import tflite_io

    io = tflite_io(path)
    x, y = io["inputs"][0], io["outputs"][0]
    size = int(x["shape"][1])
    normalised = y["dtype"].startswith("float") and _is_normalised(path)
    integer = not x["dtype"].startswith("float")
    q = (f"; the {x['dtype']} tensor holds floor(x / {x['scale']:.6g} + {x['zero_point']} + "
         "1/2) of that value (rounding half up)" if integer and "scale" in x else "")
    return {
        "input": {"name": x["name"], "layout": "NHWC", "size": [size, size], "color": "RGB",
                  "dtype": x["dtype"], "mean": 127.5, "std": 127.5, "range": [-1.0, 1.0],
                  "quantization": ({"scale": x["scale"], "zero_point": x["zero_point"]}
                                   if "scale" in x else None),
                  "description": f"An aligned {size}x{size} RGB face crop (NHWC), pixels "
                                 f"mapped to [-1, 1] as (p - 127.5) / 127.5{q}."},
        "alignment": {"template": ARCFACE_TEMPLATE.tolist(), "size": size,
                      "points": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"],
                      "method": "5-point similarity transform (Umeyama) onto the template"},
        "output": {"name": y["name"], "dim": int(y["shape"][-1]), "dtype": y["dtype"],
                   "normalised": normalised,
                   "quantization": ({"scale": y["scale"], "zero_point": y["zero_point"]}
                                    if "scale" in y else None),
                   "description": f"{int(y['shape'][-1])}-d face embedding, "
                                  + ("L2-normalised" if normalised else
                                     "raw: dequantise and L2-normalise it")
                                  + "; compare two faces by cosine."},
        "flip_sum": True,
        "flip_sum_note": "The thresholds and reported accuracy embed each face and its mirror "
                         "image and add the two before normalising (two inferences per face).",
        "thresholds": thresholds,
    }


def add_metadata(path, card=None, threshold_set=None, version=None, name=None):
    """Measure the contract of the .tflite at `path` (and thresholds on `threshold_set`), then
    rewrite the file atomically with TFLite metadata and `card` + contract as model_card.json.
    Returns the contract."""
    path = os.fspath(path)
    thresholds = cosine_thresholds(path, threshold_set) if threshold_set else None
    contract = contract_of(path, thresholds)
    card = {**(card or {}), "contract": contract}
    arch = card.get("architecture") or {}
    name = name or f"tfmargin {arch.get('name', 'face')} embedder"
    description = ("Face embedder exported by tfmargin. "
                   + contract["input"]["description"] + " Align with the 5-point ArcFace "
                   "template. " + contract["output"]["description"] + " "
                   + contract["flip_sum_note"] + _threshold_text(thresholds)
                   + f" Details: the associated file {CARD_FILE}.")
    version = version or str(card.get("export", {}).get("date") or "1")
    metadata = metadata_flatbuffer(contract, name, description, version)
    with open(path, "rb") as f:
        model = f.read()
    files = {CARD_FILE: json.dumps(card, indent=1, default=str).encode()}
    write_bytes(path, attach_metadata(model, metadata, files))
    return contract


def write_tflite(path, content, card=None, threshold_set=None, metadata=True):
    """Write converted TFLite `content` to `path` with its metadata, atomically: the contract is
    measured on a temporary file beside it, which replaces `path` only once it carries it."""
    from tfmargin.atomic import atomic_path

    with atomic_path(path, suffix=".tflite") as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
        if metadata:
            add_metadata(tmp, card, threshold_set, name=None)
    return os.fspath(path)


def _threshold_text(thresholds):
    if not thresholds:
        return ""
    parts = [f"FAR {k}: cosine >= {v['cosine']:.4f}" for k, v in thresholds.items()
             if isinstance(v, dict) and v.get("cosine") is not None]
    return (" Thresholds (" + os.path.basename(thresholds["set"]) + "): " + "; ".join(parts)
            + ".") if parts else ""
