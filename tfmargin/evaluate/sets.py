"""Verification sets by name (lfw, cfp_fp, agedb_30, a held-out split ...), evaluated together:
shared by the CLI and the training callback."""

import os

import numpy as np

from tfmargin.evaluate.embed import embed, load_embedder
from tfmargin.evaluate.verification import verification_from_embeddings


def set_name(path):
    """'data/agedb_30.bin' -> 'agedb_30'."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


def load_sets(bins, image_size=112):
    """{name: (images uint8 (2N, H, W, 3), issame (N,))}.

    `bins`: a comma-separated string or list of .bin paths (named after the file), or a dict
    {name: path or (images, issame)}.
    """
    if isinstance(bins, str):
        bins = [b for b in bins.split(",") if b]
    if not isinstance(bins, dict):
        named = {}
        for path in bins:
            name = set_name(path)
            if name in named:
                raise ValueError(f"two verification sets are named {name!r}: {named[name]} and "
                                 f"{path}; pass a dict to name them")
            named[name] = path
        bins = named
    if not bins:
        raise ValueError("no verification sets given")
    out = {}
    for name, item in bins.items():
        if isinstance(item, (str, os.PathLike)):
            from tfmargin.data.verification_bin import load_verification_bin

            if not os.path.isfile(item):
                raise FileNotFoundError(f"verification set {name!r}: {os.fspath(item)} does not "
                                        "exist")
            images, issame = load_verification_bin(item, image_size=image_size)
        else:
            images, issame = item
            images, issame = np.asarray(images), np.asarray(issame, dtype=bool).reshape(-1)
            if images.ndim != 4 or images.shape[0] != 2 * issame.shape[0]:
                raise ValueError(f"verification set {name!r}: {images.shape[0]} images for "
                                 f"{issame.shape[0]} pairs (expected images (2N, H, W, 3))")
        out[name] = (images, issame)
    return out


def evaluate_sets(model, sets, batch_size=128, flip=True, folds=10, thresholds="insightface",
                  verbose=False):
    """{name: VerificationResult} of `model` (anything `embed` runs) on each loaded set."""
    embedder = load_embedder(model)
    results = {}
    for name, (images, issame) in sets.items():
        embeddings = embed(embedder, images, batch_size=batch_size, flip=flip, verbose=verbose,
                           label=name, dedupe=True)
        results[name] = verification_from_embeddings(embeddings, issame, folds=folds,
                                                     thresholds=thresholds)
    return results


def far_label(far):
    """1e-3 -> "1e-3": how a FAR names a column, a threshold or a TAR entry."""
    return f"{far:.0e}".replace("e-0", "e-")


def format_table(rows):
    """Markdown table of [(model, set, VerificationResult)]: accuracy +- std in %, TAR at each
    FAR over all pairs, and insightface's fold-based VAL@FAR=1e-3."""
    fars = sorted({far for _, _, r in rows for far in r.tar_at_far}, reverse=True)
    head = (["model", "set", "pairs", "accuracy (%)"] + [f"TAR@FAR={far_label(f)}" for f in fars]
            + ["VAL@FAR=1e-3 (insightface)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, name, r in rows:
        cells = [model, name, str(r.num_pairs),
                 f"{100 * r.accuracy:.2f} ± {100 * r.accuracy_std:.2f}"]
        cells += [f"{100 * r.tar_at_far[f]:.2f}" if f in r.tar_at_far else "-" for f in fars]
        val = r.val_at_far.get(1e-3)
        cells.append("-" if val is None or np.isnan(val[0])
                     else f"{100 * val[0]:.2f} ± {100 * val[1]:.2f} @ {val[2]:.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
