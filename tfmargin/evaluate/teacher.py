"""Is a teacher worth distilling? Its embeddings of its own training images against its own
class centers, and its verification accuracy.

MarginDistillation hands the student the teacher's centers and a margin per sample from the
cosine between the teacher's embedding and its center. Both are meaningless when the teacher's
embeddings do not sit near its centers (a head that never learned its identities), whatever
its verification accuracy. So the report measures exactly that:

* top-1: the share of training images whose nearest center (cosine) is their own class;
* the median cosine (and angle) between a training embedding and its own center;
* accuracy on verification sets (10 folds, flip-sum, insightface's protocol).

    report = teacher_report("teacher/classifier.keras", "data/demo",
                            bins={"val": "data/demo/val.bin", "test": "data/demo/test.bin"})
    print(report.format())

Embeddings of training images are taken without flipping: the way the head saw them.
"""

import dataclasses
import os

import numpy as np

from tfmargin.evaluate.vectors import unit_rows

# What a teacher must show before its centers are handed to a student (docs/training.md).
MIN_TOP1 = 0.90
MIN_MEDIAN_COS = 0.5


@dataclasses.dataclass
class TeacherReport:
    model: str
    data: str
    images: int
    classes: int
    top1: float              # nearest center is the own class
    median_cos: float        # cosine to the own center
    median_angle_deg: float
    sets: dict               # name -> VerificationResult

    def checks(self):
        """[(what, value, threshold, passed)] of the two center checks."""
        return [("top-1 of training images against the centers", self.top1, MIN_TOP1,
                 self.top1 >= MIN_TOP1),
                ("median cosine to the own center", self.median_cos, MIN_MEDIAN_COS,
                 self.median_cos >= MIN_MEDIAN_COS)]

    @property
    def passed(self):
        return all(ok for *_, ok in self.checks())

    def to_dict(self):
        out = {k: getattr(self, k) for k in ("model", "data", "images", "classes", "top1",
                                             "median_cos", "median_angle_deg")}
        out["sets"] = {name: r.to_dict() for name, r in self.sets.items()}
        out["checks"] = [{"check": what, "value": v, "min": t, "passed": ok}
                         for what, v, t, ok in self.checks()]
        return out

    def format(self):
        lines = [f"teacher {self.model} on {self.images} training images of {self.classes} "
                 f"classes ({self.data}):"]
        for what, value, threshold, ok in self.checks():
            lines.append(f"  {what}: {value:.4f} (>= {threshold}: "
                         f"{'pass' if ok else 'FAIL'})")
        lines.append(f"  median angle to the own center: {self.median_angle_deg:.1f} deg")
        for name, r in self.sets.items():
            lines.append(f"  {name}: {100 * r.accuracy:.2f} +- {100 * r.accuracy_std:.2f} % "
                         f"({r.num_pairs} pairs, {len(r.fold_accuracies)} folds)")
        return "\n".join(lines)


def center_statistics(embeddings, labels, centers, chunk=4096):
    """(top-1, cosines to the own center) of `embeddings` (N, D) with `labels` (N,) against
    `centers` (D, C); normalised here, in float64, `chunk` rows at a time so that memory stays
    at chunk x C whatever N (MS1M: 85,742 centers)."""
    e = unit_rows(np.asarray(embeddings, np.float64))
    c = unit_rows(np.asarray(centers, np.float64).T)
    labels = np.asarray(labels, np.int64)
    if labels.min() < 0 or labels.max() >= len(c):
        raise ValueError(f"labels span {labels.min()}..{labels.max()} but the head has "
                         f"{len(c)} centers")
    own = np.einsum("nd,nd->n", e, c[labels])
    hits = 0
    for start in range(0, len(e), chunk):
        cos = e[start:start + chunk] @ c.T
        hits += int(np.sum(cos.argmax(axis=1) == labels[start:start + chunk]))
    return hits / len(e), own


def teacher_report(model, data, bins=None, batch_size=128, max_images=None, folds=10,
                   verbose=False):
    """TeacherReport of a classifier file (backbone + head with centers) on its training data
    (`.rec` or a directory holding train.rec) and optional verification sets ({name: .bin}
    or a list of paths). `max_images`: an evenly spaced subset of the training images (a
    large dataset need not be embedded whole to see whether the head learned it)."""
    from tfmargin.data.feed import load_rec_arrays
    from tfmargin.evaluate.embed import embed
    from tfmargin.evaluate.sets import evaluate_sets, load_sets
    from tfmargin.models.io import find_backbone, find_centers, load_model

    where = os.fspath(model) if isinstance(model, (str, os.PathLike)) else str(model)
    classifier = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    backbone, centers = find_backbone(classifier, where), find_centers(classifier, where)
    rec = os.fspath(data)
    if os.path.isdir(rec):
        rec = os.path.join(rec, "train.rec")
    images, labels = load_rec_arrays(rec, max_images=max_images)
    emb = embed(backbone, images, batch_size=batch_size, flip=False, verbose=verbose)
    top1, own = center_statistics(emb, labels, centers)
    sets = {}
    if bins:
        sets = evaluate_sets(backbone, load_sets(bins), batch_size=batch_size, folds=folds,
                             verbose=verbose)
    median_cos = float(np.median(own))
    return TeacherReport(where, rec, len(labels), centers.shape[1], top1, median_cos,
                         float(np.degrees(np.arccos(np.clip(median_cos, -1, 1)))), sets)
