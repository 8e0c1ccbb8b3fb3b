"""On-disk 1:N identification sets (probe, gallery, distractors), for the CLI and notebooks.

Two layouts:

1. One `.npz` file with arrays `probe`, `probe_labels`, `gallery`, `gallery_labels` and
   optionally `distractors`.
2. A directory holding `probe.npz` and `gallery.npz` (each with `labels` and either `images` or
   `embeddings`) and optionally `distractors/*.npy` (files taken in name order). Distractor
   files are memory-mapped and streamed one slice at a time, so a MegaFace-sized set (1M images,
   or 1M x 512 embeddings) never has to fit in memory.

Every image array is uint8 RGB (N, H, W, 3) and is embedded with the model (flip-sum, like the
verification sets); every embedding array is float (N, D) and is used as it is. Labels are
integers or strings; a probe's mates are the gallery rows with its label.
"""

import glob
import os

import numpy as np

from tfmargin.evaluate.embed import embed, load_embedder
from tfmargin.evaluate.identification import identification

DISTRACTOR_BATCH = 4096  # distractor images embedded per step when streaming


def _is_images(a):
    return a.ndim == 4 and a.dtype == np.uint8


def _check(array, where):
    if not (_is_images(array) or (array.ndim == 2 and np.issubdtype(array.dtype, np.floating))):
        raise ValueError(f"{where}: expected uint8 images (N, H, W, 3) or float embeddings "
                         f"(N, D), got {array.dtype} {array.shape}")
    return array


def load_identification_set(path):
    """{'probe', 'probe_labels', 'gallery', 'gallery_labels', 'distractors',
    'distractor_labels'}: arrays (distractor_labels: None unless an .npz holds them), and for
    distractors None, an array, or a list of memory-mapped arrays (one per file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        out = {}
        for part in ("probe", "gallery"):
            f = os.path.join(path, f"{part}.npz")
            if not os.path.isfile(f):
                raise FileNotFoundError(f"identification set {path}: missing {part}.npz")
            with np.load(f, allow_pickle=False) as z:
                keys = [k for k in ("images", "embeddings") if k in z.files]
                if len(keys) != 1 or "labels" not in z.files:
                    raise ValueError(f"{f}: expected 'labels' and one of 'images' / "
                                     f"'embeddings', found {sorted(z.files)}")
                out[part] = _check(z[keys[0]], f"{f}:{keys[0]}")
                out[f"{part}_labels"] = z["labels"]
        files = sorted(glob.glob(os.path.join(path, "distractors", "*.npy")))
        out["distractors"] = [_check(np.load(f, mmap_mode="r", allow_pickle=False), f)
                              for f in files] or None
        out["distractor_labels"] = None
        return out
    if not os.path.isfile(path):
        raise FileNotFoundError(f"identification set {path} does not exist")
    if not path.endswith(".npz"):
        raise ValueError(f"identification set {path}: expected a .npz file or a directory")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("probe", "probe_labels", "gallery", "gallery_labels")
                   if k not in z.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing} (has {sorted(z.files)})")
        out = {k: z[k] for k in ("probe", "probe_labels", "gallery", "gallery_labels")}
        out["distractors"] = z["distractors"] if "distractors" in z.files else None
        # optional: who the distractors are (the synthetic sets record it; all-pairs 1:1 uses it)
        out["distractor_labels"] = (z["distractor_labels"] if "distractor_labels" in z.files
                                    else None)
    for k in ("probe", "gallery", "distractors"):
        if out[k] is not None:
            _check(out[k], f"{path}:{k}")
    return out


def _distractor_stream(parts, embedder, batch_size, flip, verbose):
    """Embeddings of distractor parts, slice by slice (images are embedded as they stream)."""
    total = sum(p.shape[0] for p in parts)
    done = 0
    for part in parts:
        if not _is_images(part):
            yield part
            done += part.shape[0]
            continue
        for start in range(0, part.shape[0], DISTRACTOR_BATCH):
            images = np.asarray(part[start:start + DISTRACTOR_BATCH])
            yield embed(embedder, images, batch_size=batch_size, flip=flip)
            done += images.shape[0]
            if verbose:
                print(f"distractors: {done}/{total} embedded", flush=True)


def run_identification(model, data, batch_size=128, flip=True, ranks=(1, 5, 10), verbose=False):
    """identification() on a set from `load_identification_set` (or its path), embedding any
    image arrays with `model` (anything `embed` runs; may be None if all are embeddings)."""
    if isinstance(data, (str, os.PathLike)):
        data = load_identification_set(data)
    embedder = None

    def embedded(array, label):
        nonlocal embedder
        if not _is_images(array):
            return array
        if model is None:
            raise ValueError(f"identification: {label} holds images but no model was given")
        embedder = embedder or load_embedder(model)
        return embed(embedder, array, batch_size=batch_size, flip=flip, verbose=verbose,
                     label=label)

    probe = embedded(data["probe"], "probe")
    gallery = embedded(data["gallery"], "gallery")
    distractors = data["distractors"]
    if isinstance(distractors, np.ndarray):
        distractors = [distractors]
    if distractors is not None:
        if any(_is_images(p) for p in distractors):
            if model is None:
                raise ValueError("identification: distractors hold images but no model was given")
            embedder = embedder or load_embedder(model)
        distractors = _distractor_stream(distractors, embedder, batch_size, flip, verbose)
    return identification(probe, data["probe_labels"], gallery, data["gallery_labels"],
                          distractors, ranks=ranks)


def labelled_images(path):
    """(images, labels) of an identification set: its probes, gallery and, when the set
    names them, its distractors: every image of known identity, for all-pairs 1:1 tests."""
    data = load_identification_set(path)
    images = [data["probe"], data["gallery"]]
    labels = [data["probe_labels"], data["gallery_labels"]]
    if data["distractors"] is not None and data["distractor_labels"] is not None:
        images.append(np.asarray(data["distractors"]))
        labels.append(data["distractor_labels"])
    return np.concatenate(images), np.concatenate(labels)
