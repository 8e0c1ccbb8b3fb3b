"""The held-out identities a comparison reports on, loaded once, and the numbers of one model.

Two disjoint sets of identities the models never trained on:
* a 10-fold verification .bin (insightface's protocol): `accuracy` (mean over folds);
* an identification set (tfmargin.evaluate.load_identification_set with distractors): its
  probe, gallery and distractor images together, every pair of them compared
  (`pairwise_verification`, IJB-C-style 1:1): `tar@1e-3`, `tar@1e-4`; and 1:N search of each
  probe among the gallery and the distractors: `rank1`.
Each image is embedded once (flip-sum, as the verification sets).
"""

import dataclasses

import numpy as np

METRICS = ("accuracy", "tar@1e-3", "tar@1e-4", "rank1")  # the reported numbers, in order
LABELS = {"accuracy": "10-fold accuracy", "tar@1e-3": "TAR@FAR=1e-3", "tar@1e-4": "TAR@FAR=1e-4",
          "rank1": "rank-1"}


@dataclasses.dataclass
class HeldOut:
    test: tuple              # (images (2N, H, W, 3), issame (N,)) of the .bin
    images: np.ndarray       # uint8: probes, then gallery, then distractors
    labels: np.ndarray       # identity of each
    parts: dict              # {"probe"|"gallery"|"distractors": slice into images}
    sources: dict            # {"test_bin": path, "identification": path}

    def describe(self):
        issame = self.test[1]
        return {**self.sources, "test_pairs": int(issame.size),
                "test_genuine_pairs": int(issame.sum()),
                "pairwise_images": int(self.labels.size),
                "pairwise_identities": int(np.unique(self.labels).size)}


def load_held_out(test_bin, identification):
    """HeldOut from a .bin and an identification set that has distractors with labels
    (`distractor_labels`) or none; ValueError naming the file when one is unusable."""
    from tfmargin.evaluate import load_identification_set, load_sets

    test = load_sets({"test": test_bin})["test"]
    data = load_identification_set(identification)
    distractors = data["distractors"]
    if isinstance(distractors, list):
        raise ValueError(f"{identification}: streamed distractor files carry no labels; the "
                         "comparison needs one .npz with distractor_labels")
    parts, images, labels = {}, [], []
    start = 0
    for part, label_key in (("probe", "probe_labels"), ("gallery", "gallery_labels"),
                            ("distractors", "distractor_labels")):
        array = data[part]
        if array is None:
            continue
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(f"{identification}: {part} must be uint8 images for the pairwise "
                             f"protocol, got {array.dtype} {array.shape}")
        part_labels = data.get(label_key)
        if part_labels is None:
            raise ValueError(f"{identification}: {part} has no {label_key}")
        parts[part] = slice(start, start + len(array))
        start += len(array)
        images.append(array)
        labels.append(np.asarray(part_labels).reshape(-1))
    if "distractors" in parts and np.intersect1d(labels[0], labels[-1]).size:
        raise ValueError(f"{identification}: distractor_labels share identities with the "
                         "probes; distractors must be other people")
    return HeldOut(test, np.concatenate(images), np.concatenate(labels), parts,
                   {"test_bin": str(test_bin), "identification": str(identification)})


def evaluate_held_out(model, held, batch_size=128):
    """{metric: value} (METRICS) plus "accuracy_std", "impostor_pairs", "genuine_pairs" of
    `model` (anything tfmargin.evaluate.embed runs)."""
    from tfmargin.evaluate import (embed, evaluate_sets, identification, load_embedder,
                                   pairwise_verification)

    embedder = load_embedder(model)
    verification = evaluate_sets(embedder, {"test": held.test}, batch_size=batch_size)["test"]
    emb = embed(embedder, held.images, batch_size=batch_size, flip=True, dedupe=True)
    pairs = pairwise_verification(emb, held.labels, fars=(1e-3, 1e-4))
    p, g = held.parts["probe"], held.parts["gallery"]
    d = held.parts.get("distractors")
    search = identification(emb[p], held.labels[p], emb[g], held.labels[g],
                            None if d is None else emb[d], ranks=(1,))
    return {"accuracy": float(verification.accuracy),
            "accuracy_std": float(verification.accuracy_std),
            "tar@1e-3": float(pairs.tar_at_far[1e-3]), "tar@1e-4": float(pairs.tar_at_far[1e-4]),
            "rank1": float(search.accuracy[1]),
            "genuine_pairs": pairs.genuine_pairs, "impostor_pairs": pairs.impostor_pairs}
