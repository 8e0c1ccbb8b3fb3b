"""1:1 verification with insightface's protocol (LFW, CFP-FP, AgeDB-30 ...), reproduced exactly.

insightface (`recognition/arcface_torch/eval/verification.py`, `calculate_roc`) scores a pair by the
squared L2 distance between L2-normalised embeddings, splits the pairs into 10 contiguous folds
in file order (`KFold(10, shuffle=False)`), picks on the other nine folds the threshold of the grid
`np.arange(0, 4, 0.01)` with the best accuracy (the first one on ties), and reports the mean and
standard deviation over folds of the accuracy at that threshold on the held-out fold.
`verification(...)` gives the same numbers, bit for bit, but counts every threshold at once from
one histogram per fold instead of re-scanning the pairs 400 times per fold.

Squared distance and cosine similarity carry the same information for unit vectors
(d = 2 - 2 cos): thresholds are reported in both forms.

Two TAR@FAR numbers exist and they are not the same estimator:

* `tar_at_far` (overall): over all pairs at once, the highest TAR whose FAR is <= the target
  (`roc.tar_at_far`). This is the usual IJB-style figure.
* `val_at_far` (insightface's VAL@FAR, `calculate_val`): per fold, the distance threshold at which
  the nine training folds reach the target FAR is found by linear interpolation over the grid
  `np.arange(0, 4, 0.001)`, then VAL (TAR) and FAR are measured on the held-out fold; reported
  as (mean VAL, std VAL, mean FAR achieved) over folds, as insightface prints them.
"""

import dataclasses

import numpy as np

from tfmargin.evaluate.roc import default_fars, roc_curve, tar_at_far
from tfmargin.evaluate.vectors import unit_rows

INSIGHTFACE_THRESHOLDS = np.arange(0, 4, 0.01)  # calculate_roc's grid (squared L2 distance)
INSIGHTFACE_VAL_THRESHOLDS = np.arange(0, 4, 0.001)  # calculate_val's grid


@dataclasses.dataclass
class VerificationResult:
    """What `verification` measured on one pair list.

    accuracy, accuracy_std: mean and (population) std over folds of the held-out-fold accuracy.
    fold_accuracies: the accuracy of each fold.
    thresholds: per fold, the cosine-similarity threshold chosen on the other folds (a pair is
        accepted when its cosine similarity is > threshold).
    distance_thresholds: the same thresholds as insightface states them, on squared L2 distance
        (accepted when distance < threshold); thresholds = 1 - distance_thresholds / 2.
    tar_at_far: {FAR: TAR} over all pairs at once (see the module docstring).
    val_at_far: {FAR: (VAL mean, VAL std, FAR mean)}: insightface's fold-based estimate.
    roc: (fpr, tpr) over all pairs, one point per distinct score, from (0, 0) to (1, 1).
    """

    accuracy: float
    accuracy_std: float
    fold_accuracies: np.ndarray
    thresholds: np.ndarray
    distance_thresholds: np.ndarray
    tar_at_far: dict
    val_at_far: dict
    roc: tuple
    num_pairs: int
    num_genuine: int

    def to_dict(self, include_roc=False):
        """JSON-friendly summary (FAR keys become strings such as '0.001'; NaN becomes None)."""
        def num(x):
            return None if x is None or np.isnan(x) else float(x)

        out = {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "fold_accuracies": [float(a) for a in self.fold_accuracies],
            "thresholds": [float(t) for t in self.thresholds],
            "distance_thresholds": [float(t) for t in self.distance_thresholds],
            "tar_at_far": {f"{far:g}": tar for far, tar in self.tar_at_far.items()},
            "val_at_far": {f"{far:g}": {"val": num(v), "val_std": num(s), "far": num(f)}
                           for far, (v, s, f) in self.val_at_far.items()},
            "num_pairs": self.num_pairs,
            "num_genuine": self.num_genuine,
        }
        if include_roc:
            out["roc"] = {"fpr": self.roc[0].tolist(), "tpr": self.roc[1].tolist()}
        return out


def fold_ids(num_pairs, folds):
    """Fold index of each pair: contiguous folds in order, sizes as sklearn's KFold
    (the first num_pairs % folds folds hold one pair more)."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if num_pairs < folds:
        raise ValueError(f"{num_pairs} pairs cannot be split into {folds} folds")
    sizes = np.full(folds, num_pairs // folds, dtype=np.int64)
    sizes[: num_pairs % folds] += 1
    return np.repeat(np.arange(folds), sizes)


def squared_distances(embeddings1, embeddings2):
    """Squared L2 distance of each L2-normalised pair, in float64 as insightface computes it."""
    e1 = np.asarray(embeddings1, dtype=np.float64)
    e2 = np.asarray(embeddings2, dtype=np.float64)
    if e1.ndim != 2 or e1.shape != e2.shape:
        raise ValueError(f"embeddings1 {e1.shape} and embeddings2 {e2.shape} must be two (N, D) "
                         "arrays of the same shape")
    if not (np.all(np.isfinite(e1)) and np.all(np.isfinite(e2))):
        raise ValueError("embeddings contain NaN or infinity")
    return np.sum(np.square(unit_rows(e1) - unit_rows(e2)), axis=1)


def _accepted_counts(cut, issame, folds_of, folds, num_cuts):
    """(tp, fp): [fold, k] = genuine / impostor pairs of the fold accepted at cut k,
    where a pair is accepted at every cut k >= cut[pair]."""
    width = num_cuts + 1
    index = folds_of * width + cut

    def hist(mask):
        h = np.bincount(index[mask], minlength=folds * width).reshape(folds, width)
        return np.cumsum(h, axis=1)[:, :num_cuts]

    return hist(issame), hist(~issame)


def _train_counts(per_fold, folds):
    # insightface's LFold(1) trains and tests on the same pairs.
    return per_fold if folds == 1 else per_fold.sum(axis=0, keepdims=True) - per_fold


def _cuts(dist, thresholds):
    """(cut index of each pair, number of cuts, squared-distance threshold of each cut)."""
    if isinstance(thresholds, str):
        if thresholds == "insightface":
            grid = INSIGHTFACE_THRESHOLDS
        elif thresholds == "exact":
            # Every way to split the sorted distinct distances: cut k accepts the k smallest.
            u = np.unique(dist)
            cut = np.searchsorted(u, dist, side="left") + 1
            grid = np.r_[u[0], (u[:-1] + u[1:]) / 2.0, np.nextafter(u[-1], np.inf)]
            return cut, grid.size, grid
        else:
            raise ValueError(f"thresholds must be 'insightface', 'exact' or an array, "
                             f"got {thresholds!r}")
    else:
        grid = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if grid.size == 0 or np.any(np.diff(grid) <= 0):
            raise ValueError("thresholds must be a non-empty, strictly increasing array of "
                             "squared-distance thresholds")
    # Accepted at threshold t when dist < t, i.e. from the first grid value > dist on.
    return np.searchsorted(grid, dist, side="right"), grid.size, grid


def _interp_slinear(x, y, v):
    """scipy <= 1.8 `interp1d(x, y, kind='slinear')(v)` for non-decreasing x with repeats.

    insightface's calculate_val relies on it; scipy >= 1.9 refuses repeated x, so the old
    B-spline evaluation (find_interval + de Boor, k = 1) is restated here, same arithmetic.
    Requires x[0] <= v <= x[-1].
    """
    i = min(max(int(np.searchsorted(x, v, side="right")), 1), x.size - 1)
    xa, xb = x[i - 1], x[i]
    if xb == xa:  # only at v == x[-1] with a repeated last value: the old code returned 0
        return 0.0
    w = 1.0 / (xb - xa)
    return y[i - 1] * (w * (xb - v)) + y[i] * (w * (v - xa))


def _val_at_far(dist, issame, folds_of, folds, far_target):
    """insightface's calculate_val: (VAL mean, VAL std, FAR mean) over folds."""
    grid = INSIGHTFACE_VAL_THRESHOLDS
    cut = np.searchsorted(grid, dist, side="right")
    _, fp = _accepted_counts(cut, issame, folds_of, folds, grid.size)
    fp_train = _train_counts(fp, folds)
    neg = np.bincount(folds_of[~issame], minlength=folds)
    neg_train = _train_counts(neg, folds)
    val = np.full(folds, np.nan)
    far = np.full(folds, np.nan)
    for f in range(folds):
        if neg_train[f] == 0:
            continue  # no impostor to measure a FAR on (insightface divides by zero here)
        far_train = fp_train[f] / float(neg_train[f])
        threshold = (_interp_slinear(far_train, grid, far_target)
                     if np.max(far_train) >= far_target else 0.0)
        test = folds_of == f
        accept = dist[test] < threshold
        same = issame[test]
        if same.any():
            val[f] = np.sum(accept & same) / float(np.sum(same))
        if (~same).any():
            far[f] = np.sum(accept & ~same) / float(np.sum(~same))
    if np.all(np.isnan(val)):
        return float("nan"), float("nan"), float("nan")
    return float(np.nanmean(val)), float(np.nanstd(val)), float(np.nanmean(far))


def verification(embeddings1, embeddings2, issame, folds=10, thresholds="insightface",
                 fars=None):
    """insightface's 10-fold verification of pairs (embeddings1[i], embeddings2[i]).

    Args:
      embeddings1, embeddings2: (N, D) arrays; L2-normalised here (in float64).
      issame: (N,) booleans, True for pairs of the same person.
      folds: number of contiguous folds (insightface: 10; 1 trains and tests on all pairs).
      thresholds: 'insightface' (default): the grid np.arange(0, 4, 0.01) on squared distance,
        which reproduces insightface's accuracy exactly; 'exact': every split of the sorted
        distances (the best threshold the training folds allow, >= the grid's accuracy on the
        training folds); or an increasing array of squared-distance thresholds.
      fars: FAR targets for tar_at_far and val_at_far; default 1e-1, 1e-2, 1e-3 and lower
        powers of ten while the number of impostor pairs allows one false accept.

    Returns:
      VerificationResult.
    """
    dist = squared_distances(embeddings1, embeddings2)
    issame = np.asarray(issame).reshape(-1)
    if issame.shape[0] != dist.shape[0]:
        raise ValueError(f"issame has {issame.shape[0]} entries for {dist.shape[0]} pairs")
    if issame.dtype != bool:
        if not np.all(np.isin(issame, (0, 1))):
            raise ValueError("issame must hold booleans or 0/1")
        issame = issame.astype(bool)
    folds_of = fold_ids(dist.shape[0], folds)

    cut, num_cuts, grid = _cuts(dist, thresholds)
    tp, fp = _accepted_counts(cut, issame, folds_of, folds, num_cuts)
    pos = np.bincount(folds_of[issame], minlength=folds)
    neg = np.bincount(folds_of[~issame], minlength=folds)
    # Correct decisions on the training folds at every cut; argmax keeps the first best cut,
    # as np.argmax over insightface's accuracy list does (integer counts order the same way).
    correct_train = _train_counts(tp, folds) + (_train_counts(neg, folds)[:, None]
                                                - _train_counts(fp, folds))
    best = np.argmax(correct_train, axis=1)
    rows = np.arange(folds)
    correct_test = tp[rows, best] + neg - fp[rows, best]
    fold_acc = correct_test / (pos + neg).astype(np.float64)

    # -dist orders pairs exactly as cosine similarity does, without 1 - d/2 rounding ties.
    score = -dist
    if fars is None:
        fars = default_fars(int(np.sum(~issame)))
    fpr, tpr, _ = roc_curve(score, issame)
    return VerificationResult(
        accuracy=float(np.mean(fold_acc)),
        accuracy_std=float(np.std(fold_acc)),
        fold_accuracies=fold_acc,
        thresholds=1.0 - grid[best] / 2.0,
        distance_thresholds=grid[best],
        tar_at_far=tar_at_far(score, issame, fars),
        val_at_far={float(f): _val_at_far(dist, issame, folds_of, folds, float(f)) for f in fars},
        roc=(fpr, tpr),
        num_pairs=int(dist.shape[0]),
        num_genuine=int(np.sum(issame)),
    )


def verification_from_embeddings(embeddings, issame, **kwargs):
    """`verification` for the .bin layout: embeddings (2N, D) with pair i = rows 2i, 2i + 1."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] % 2:
        raise ValueError(f"expected (2N, D) embeddings of N consecutive pairs, got "
                         f"{embeddings.shape}")
    return verification(embeddings[0::2], embeddings[1::2], issame, **kwargs)
