"""`write_dataset`: a synthetic face dataset in the formats real data comes in.

    output_dir/
      train.rec, train.idx, property   insightface RecordIO of the training identities
                                       (header record + identity records; labels 0..T-1)
      val.bin                          verification pairs (model selection), LFW layout
      test.bin                         verification pairs (final numbers), LFW layout
      identification.npz               1:N split: gallery, probes, distractors (format below)
      synthetic.json                   what was generated: seed, difficulty, split, counts

Identities 0..N-1 of a seed are split in index order: the first `train` share trains, then
`val`, `test` and `identification` identities follow (default shares 0.7 / 0.1 / 0.1 / 0.1,
at least 2 identities for each held-out split while the set allows it). No identity appears in
two splits.

Verification sets follow LFW View 2: 10 folds of 300 same-identity pairs followed by 300
different-identity pairs, fold after fold (insightface's loaders and `tfmargin.evaluate`
split contiguously into 10 folds). Folds use disjoint identities when the split has at least
2 per fold, as LFW's do. With few held-out identities or images the folds shrink (equally, so
every fold stays balanced) and a warning says so.

identification.npz is the single-file layout `tfmargin.evaluate.identification_set` reads
(numpy arrays only, loads with allow_pickle=False):
  gallery            uint8 (G, 112, 112, 3)  the first image of each enrolled identity
  gallery_labels     int64 (G,)
  probe              uint8 (P, 112, 112, 3)  every other image of the enrolled identities
  probe_labels       int64 (P,)
  distractors        uint8 (M, 112, 112, 3)  every image of the distractor identities
  distractor_labels  int64 (M,)              (extra; the evaluator ignores it)
Images are the decoded JPEGs (what the .rec and .bin files hold); labels are dataset-wide
identity indices. Half of the identification identities (rounded up) are enrolled, the rest
are distractors, never enrolled: a probe is searched in gallery + distractors (MegaFace-style
closed-set rank-k identification).
"""

import math
import os
import time
import warnings

import numpy as np

from tfmargin.atomic import atomic_path, write_json
from tfmargin.datasets.synthetic.generate import (DEFAULT_RENDER_SIZE, PAIRS_STREAM, available_cpus,
                                              generate)
from tfmargin.datasets.synthetic.identity import DEFAULT_DIFFICULTY, resolve_difficulty

DEFAULT_SPLIT = {"train": 0.7, "val": 0.1, "test": 0.1, "identification": 0.1}
HELD_OUT = ("val", "test", "identification")
FOLDS = 10
PAIRS_PER_FOLD = 300  # same pairs per fold, and as many different pairs (LFW)
FORMAT_VERSION = 1


class SyntheticDatasetWarning(UserWarning):
    """The requested sizes leave an evaluation set smaller than its standard size."""


def split_identities(num_identities, split=None):
    """{split name: range of identity indices}, in the order train, val, test, identification.

    `split` maps names to shares (default DEFAULT_SPLIT). Each held-out split gets its share
    rounded, and at least 2 identities while at least half of the identities remain to train.
    """
    n = int(num_identities)
    if n < 1:
        raise ValueError(f"identities: need at least 1 identity, got {num_identities}")
    shares = dict(DEFAULT_SPLIT if split is None else split)
    unknown = set(shares) - set(DEFAULT_SPLIT)
    if unknown or any(not (s >= 0) for s in shares.values()):
        raise ValueError(f"split: expected non-negative shares for {sorted(DEFAULT_SPLIT)}, got "
                         f"{split!r}")
    total = sum(shares.get(k, 0.0) for k in DEFAULT_SPLIT)
    if not total > 0:
        raise ValueError(f"split: shares must not all be 0, got {split!r}")
    wanted = {k: (max(2, round(n * shares.get(k, 0.0) / total)) if shares.get(k, 0.0) > 0 else 0)
              for k in HELD_OUT}
    available = n - max(1, math.ceil(n / 2)) if shares.get("train", 0.0) > 0 else n
    counts = dict.fromkeys(HELD_OUT, 0)
    while available > 0 and any(counts[k] < wanted[k] for k in HELD_OUT):
        for k in HELD_OUT:  # one identity at a time, round robin, so small sets share fairly
            if available > 0 and counts[k] < wanted[k]:
                counts[k] += 1
                available -= 1
    counts = {"train": n - sum(counts.values()), **counts}
    ranges, start = {}, 0
    for k in ("train", *HELD_OUT):
        ranges[k] = range(start, start + counts[k])
        start += counts[k]
    return ranges


def _warn(message):
    warnings.warn(message, SyntheticDatasetWarning, stacklevel=3)


def verification_pairs(identities, images_per_identity, rng, folds=FOLDS,
                       pairs_per_fold=PAIRS_PER_FOLD, name="verification"):
    """LFW-layout pairs over `identities` (a sequence of identity indices) with
    `images_per_identity` images each.

    Returns (pairs, issame, per_fold): pairs an int64 (N, 2, 2) array of ((identity, image),
    (identity, image)); issame bool (N,); fold f is pairs[2 * per_fold * f: 2 * per_fold * (f + 1)],
    its same pairs first. Without replacement within a set; folds have disjoint identities when
    there are at least 2 identities per fold. Shrinks with a warning; (empty, empty, 0) if no
    balanced fold can be made at all.
    """
    ids = np.asarray(list(identities), np.int64)
    k = int(images_per_identity)
    disjoint = len(ids) >= 2 * folds
    groups = np.array_split(rng.permutation(ids), folds) if disjoint else [ids]
    same_sets, diff_sets = [], []
    for group in groups:
        a, b = np.triu_indices(k, 1)  # every image pair of one identity
        same = np.stack([np.repeat(group, len(a)), np.tile(a, len(group)),
                         np.repeat(group, len(a)), np.tile(b, len(group))], axis=1)
        gi, gj = np.triu_indices(len(group), 1)  # every image pair of two identities
        ia, ib = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        ia, ib = ia.reshape(-1), ib.reshape(-1)
        diff = np.stack([np.repeat(group[gi], k * k), np.tile(ia, len(gi)),
                         np.repeat(group[gj], k * k), np.tile(ib, len(gi))], axis=1)
        same_sets.append(rng.permutation(same))
        diff_sets.append(rng.permutation(diff))
    if disjoint:
        per_fold = min(pairs_per_fold, *(len(s) for s in same_sets), *(len(d) for d in diff_sets))
        n_folds = folds
    else:
        per_fold = min(pairs_per_fold, len(same_sets[0]) // folds, len(diff_sets[0]) // folds)
        n_folds = folds
        if per_fold == 0:  # fewer than `folds` pairs of a kind: one pair per fold, fewer folds
            n_folds = min(folds, len(same_sets[0]), len(diff_sets[0]))
            per_fold = 1 if n_folds else 0
        same_sets = [same_sets[0][f * per_fold:(f + 1) * per_fold] for f in range(n_folds)]
        diff_sets = [diff_sets[0][f * per_fold:(f + 1) * per_fold] for f in range(n_folds)]
    if per_fold == 0 or n_folds == 0:
        _warn(f"{name}: {len(ids)} identities x {k} images allow no balanced same/different "
              "pairs; the set is not written")
        return np.zeros((0, 2, 2), np.int64), np.zeros(0, bool), 0
    if per_fold < pairs_per_fold or n_folds < folds:
        _warn(f"{name}: {len(ids)} identities x {k} images allow {n_folds} folds of {per_fold} "
              f"same + {per_fold} different pairs (standard: {folds} x ({pairs_per_fold} + "
              f"{pairs_per_fold}))")
    pairs, issame = [], []
    for f in range(n_folds):
        pairs += [same_sets[f][:per_fold], diff_sets[f][:per_fold]]
        issame += [True] * per_fold + [False] * per_fold
    return np.concatenate(pairs).reshape(-1, 2, 2), np.array(issame), per_fold


def save_identification(path, gallery, probe, distractors):
    """Write identification.npz (layout in the module docstring). Each part is (uint8 images
    (N, H, W, 3), labels (N,)). Written under a temporary name and moved into place."""
    arrays = {}
    for name, key, (images, labels) in (("gallery", "gallery", gallery), ("probe", "probe", probe),
                                        ("distractors", "distractor", distractors)):
        images = np.asarray(images, np.uint8)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"{path}: {name}: {images.shape} images for {len(labels)} labels")
        arrays[name], arrays[f"{key}_labels"] = images, labels
    with atomic_path(path, suffix=".npz") as tmp:  # np.savez would append .npz otherwise
        np.savez(tmp, **arrays)
    return os.fspath(path)


def write_dataset(output_dir, identities, images_per_identity, seed=0,
                  difficulty=DEFAULT_DIFFICULTY, split=None, workers=None,
                  render_size=DEFAULT_RENDER_SIZE, folds=FOLDS, pairs_per_fold=PAIRS_PER_FOLD,
                  log=None, progress=False):
    """Generate the synthetic dataset into `output_dir` (layout in the module docstring).

    Args:
      identities: total number of identities, split by `split` (see split_identities).
      images_per_identity: images rendered for every identity.
      seed: the same seed, sizes and difficulty give the same bytes, whatever `workers`.
      difficulty: a Difficulty, 'easy' | 'medium' | 'hard', or 'NUISANCE,LIKENESS'.
      workers: generator processes (default: the CPUs this process may use).
      log: accepted for older callers and unused: progress now goes through the bar.
      progress: show a progress bar (identities rendered) on stderr.

    Returns a summary dict (also written to output_dir/synthetic.json).
    Small sets never fail: evaluation sets shrink (or, if impossible, are left out) with a
    SyntheticDatasetWarning.
    """
    from tfmargin.data.images import decode_images
    from tfmargin.data.progress import Progress
    from tfmargin.data.recordio import RecordIOWriter
    from tfmargin.data.verification_bin import save_verification_bin

    k = int(images_per_identity)
    if k < 1:
        raise ValueError(f"images_per_identity: need at least 1, got {images_per_identity}")
    d = resolve_difficulty(difficulty)
    ranges = split_identities(identities, split)
    if len(ranges["train"]) == 0:
        _warn("train: no training identities; train.rec is written empty")
    workers = workers or available_cpus()
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    start = time.perf_counter()

    held_out = {}  # identity index -> [JPEG bytes]
    train_ids = set(ranges["train"])
    n_train = len(ranges["train"])
    # The writer moves train.rec/.idx/property into place only on a clean exit.
    with RecordIOWriter(os.path.join(output_dir, "train.rec"), header=True,
                        num_classes=n_train, image_size=112) as writer, \
            Progress(int(identities), "render", enabled=progress, unit="id") as bar:
        rendered = generate(seed, range(int(identities)), k, d, workers, render_size=render_size)
        for index, encoded in rendered:
            if index in train_ids:
                for jpeg in encoded:
                    writer.write(jpeg, index)  # train identities are 0..n_train-1
            else:
                held_out[index] = encoded
            bar.update(1)
    generated = time.perf_counter() - start

    summary = {
        "format_version": FORMAT_VERSION, "seed": int(seed),
        "difficulty": {"nuisance": d.nuisance, "likeness": d.likeness},
        "render_size": int(render_size), "image_size": 112,
        "images_per_identity": k,
        "identities": {name: [r.start, r.stop] for name, r in ranges.items()},
        "train": {"path": "train.rec", "identities": n_train, "images": n_train * k},
    }
    for name in ("val", "test"):
        ids = ranges[name]
        rng = np.random.default_rng([seed, PAIRS_STREAM, HELD_OUT.index(name)])
        pairs, issame, per_fold = verification_pairs(ids, k, rng, folds, pairs_per_fold,
                                                     name=f"{name}.bin")
        path = os.path.join(output_dir, f"{name}.bin")
        if len(issame):
            bins = [held_out[i][j] for i, j in pairs.reshape(-1, 2)]
            save_verification_bin(path, bins, issame)
            summary[name] = {"path": f"{name}.bin", "identities": len(ids), "pairs": len(issame),
                             "pairs_per_fold": per_fold, "folds": len(issame) // (2 * per_fold)}
        else:
            if os.path.exists(path):
                os.remove(path)  # a stale set from an earlier run would be mistaken for this one
            summary[name] = None
    ids = list(ranges["identification"])
    enrolled, distractor_ids = ids[:(len(ids) + 1) // 2], ids[(len(ids) + 1) // 2:]
    parts = {"gallery": [(i, 0) for i in enrolled],
             "probe": [(i, j) for i in enrolled for j in range(1, k)],
             "distractors": [(i, j) for i in distractor_ids for j in range(k)]}
    if not enrolled or k < 2:
        _warn(f"identification: {len(ids)} identities x {k} images give {len(enrolled)} "
              f"enrolled identities and {len(parts['probe'])} probes")
    decoded = {name: (decode_images([held_out[i][j] for i, j in items], 112,
                                    where=f"identification {name}"),
                      [i for i, _ in items]) for name, items in parts.items()}
    save_identification(os.path.join(output_dir, "identification.npz"), decoded["gallery"],
                        decoded["probe"], decoded["distractors"])
    summary["identification"] = {"path": "identification.npz", "gallery": len(parts["gallery"]),
                                 "probes": len(parts["probe"]),
                                 "distractors": len(parts["distractors"]),
                                 "enrolled_identities": len(enrolled),
                                 "distractor_identities": len(distractor_ids)}
    total = int(identities) * k
    summary.update({"images": total, "workers": int(workers),
                    "generation_seconds": round(generated, 3),
                    "seconds": round(time.perf_counter() - start, 3),
                    "images_per_second": round(total / generated, 1) if generated > 0 else None})
    write_json(os.path.join(output_dir, "synthetic.json"), summary)
    summary["output_dir"] = output_dir
    return summary
