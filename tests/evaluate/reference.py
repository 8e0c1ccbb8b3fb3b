"""Straightforward float64 restatements of insightface's eval/verification.py, for the tests.

calculate_roc / calculate_accuracy / calculate_val / calculate_val_far follow
deepinsight/insightface recognition/arcface_torch/eval/verification.py line by line, with
sklearn's KFold(shuffle=False) and scipy<=1.8's interp1d(kind='slinear') written out as loops
(neither sklearn nor an old scipy is installed here).
"""

import numpy as np


def normalize(x):
    # sklearn.preprocessing.normalize: x / sqrt(sum(x**2)) per row
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]


def kfold(n, n_splits):
    if n_splits == 1:  # insightface's LFold
        idx = np.arange(n)
        return [(idx, idx)]
    sizes = [n // n_splits + (1 if i < n % n_splits else 0) for i in range(n_splits)]
    out, start = [], 0
    for size in sizes:
        test = np.arange(start, start + size)
        train = np.array([i for i in range(n) if not start <= i < start + size])
        out.append((train, test))
        start += size
    return out


def calculate_accuracy(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / dist.size
    return tpr, fpr, acc


def calculate_roc(thresholds, embeddings1, embeddings2, actual_issame, nrof_folds=10):
    dist = np.sum(np.square(np.subtract(embeddings1, embeddings2)), 1)
    accuracy = np.zeros(nrof_folds)
    best = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(kfold(len(actual_issame), nrof_folds)):
        acc_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, _, acc_train[threshold_idx] = calculate_accuracy(
                threshold, dist[train_set], actual_issame[train_set])
        best_threshold_index = np.argmax(acc_train)
        best[fold_idx] = thresholds[best_threshold_index]
        _, _, accuracy[fold_idx] = calculate_accuracy(
            thresholds[best_threshold_index], dist[test_set], actual_issame[test_set])
    return accuracy, best


def interp1d_slinear_old(x, y, v):
    """scipy 1.8 interp1d(x, y, kind='slinear')(v): BSpline k=1 with knots r_[x0, x, x_last],
    evaluated by _bspl.find_interval + _deBoor_D, transcribed as loops."""
    t = np.r_[x[0], x, x[-1]]
    c = np.asarray(y, dtype=np.float64)
    k = 1
    n = t.shape[0] - k - 1
    # find_interval(t, k, v, prev_l=k, extrapolate=True)
    l = k
    while v < t[l] and l != k:
        l -= 1
    l += 1
    while v >= t[l] and l != n:
        l += 1
    m = l - 1
    # _deBoor_D(t, v, k, m, nu=0)
    h = [1.0, 0.0]
    hh = [0.0, 0.0]
    for j in range(1, k + 1):
        hh[:j] = h[:j]
        h[0] = 0.0
        for nn in range(1, j + 1):
            ind = m + nn
            xb, xa = t[ind], t[ind - j]
            if xb == xa:
                h[nn] = 0.0
                continue
            w = hh[nn - 1] / (xb - xa)
            h[nn - 1] += w * (xb - v)
            h[nn] = w * (v - xa)
    out = 0.0
    for a in range(k + 1):
        out += c[m + a - k] * h[a]
    return out


def calculate_val_far(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    true_accept = np.sum(np.logical_and(predict_issame, actual_issame))
    false_accept = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    n_same = np.sum(actual_issame)
    n_diff = np.sum(np.logical_not(actual_issame))
    return float(true_accept) / float(n_same), float(false_accept) / float(n_diff)


def calculate_val(thresholds, embeddings1, embeddings2, actual_issame, far_target, nrof_folds=10):
    dist = np.sum(np.square(np.subtract(embeddings1, embeddings2)), 1)
    val = np.zeros(nrof_folds)
    far = np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(kfold(len(actual_issame), nrof_folds)):
        far_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            _, far_train[threshold_idx] = calculate_val_far(
                threshold, dist[train_set], actual_issame[train_set])
        if np.max(far_train) >= far_target:
            threshold = interp1d_slinear_old(far_train, thresholds, far_target)
        else:
            threshold = 0.0
        val[fold_idx], far[fold_idx] = calculate_val_far(
            threshold, dist[test_set], actual_issame[test_set])
    return np.mean(val), np.std(val), np.mean(far)


def brute_tar_at_far(scores, labels, far):
    """Max TPR over thresholds t (accept score >= t) with FPR <= far; t ranges over every score."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    best = 0.0
    for t in np.unique(scores):
        accept = scores >= t
        fpr = np.mean(accept[~labels])
        if fpr <= far:
            best = max(best, np.mean(accept[labels]))
    return best
