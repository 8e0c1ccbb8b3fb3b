"""ROC curves and TAR at fixed FAR over 1:1 pair lists (IJB-B/C style), exactly and in one sort.

Scores are similarities: higher means "more likely the same person". A pair is accepted when its
score is >= the operating threshold; pairs with equal scores are always accepted or rejected
together (a threshold cannot split a tie), so the curve has one point per distinct score.
"""

import numpy as np

DEFAULT_FARS = (1e-1, 1e-2, 1e-3)


def _check_scores(scores, labels, where):
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{where}: {scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{where}: scores contain NaN or infinity")
    if labels.dtype != bool:
        if not np.all(np.isin(labels, (0, 1))):
            raise ValueError(f"{where}: labels must be booleans or 0/1")
        labels = labels.astype(bool)
    return scores, labels


def roc_curve(scores, labels):
    """(fpr, tpr, thresholds) over every distinct score, starting at (0, 0).

    Point j accepts the pairs with score >= thresholds[j]; the first point (threshold +inf)
    accepts nothing. fpr and tpr are non-decreasing. With no genuine (or no impostor) pairs the
    corresponding rate is 0 everywhere.
    """
    scores, labels = _check_scores(scores, labels, "roc_curve")
    order = np.argsort(-scores, kind="stable")
    s, genuine = scores[order], labels[order]
    tp = np.cumsum(genuine, dtype=np.int64)
    fp = np.arange(1, s.size + 1, dtype=np.int64) - tp
    # The last index of each run of equal scores: a threshold there accepts the whole run.
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if s.size else np.zeros(0, np.int64)
    n_pos, n_neg = int(tp[-1]) if s.size else 0, int(fp[-1]) if s.size else 0
    tp = np.r_[0, tp[last]]
    fp = np.r_[0, fp[last]]
    tpr = tp / n_pos if n_pos else np.zeros(tp.shape)
    fpr = fp / n_neg if n_neg else np.zeros(fp.shape)
    return fpr, tpr, np.r_[np.inf, s[last]]


def default_fars(num_impostors):
    """1e-1, 1e-2, 1e-3, then each lower power of ten that still allows one false accept."""
    fars = list(DEFAULT_FARS)
    k = 4
    while num_impostors * 10.0 ** -k >= 1.0:
        fars.append(10.0 ** -k)
        k += 1
    return tuple(fars)


def tar_at_far(scores, labels, fars=None):
    """{far: TAR}: the highest true-accept rate of any threshold whose false-accept rate is <= far.

    `scores` are similarities, `labels` True (or 1) for genuine pairs. This is the conservative
    reading of "TAR at FAR": the operating point never exceeds the FAR asked for, and equal scores
    are never split. `fars` defaults to `default_fars(number of impostor pairs)`.
    """
    scores, labels = _check_scores(scores, labels, "tar_at_far")
    fpr, tpr, _ = roc_curve(scores, labels)
    if fars is None:
        fars = default_fars(int(np.sum(~labels)))
    out = {}
    for far in fars:
        far = float(far)
        if not 0.0 <= far <= 1.0:
            raise ValueError(f"tar_at_far: FAR {far} is outside [0, 1]")
        # fpr and tpr are non-decreasing: the last point with fpr <= far has the highest tpr.
        j = int(np.searchsorted(fpr, far, side="right")) - 1
        out[far] = float(tpr[j])
    return out
