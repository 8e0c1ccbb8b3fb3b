"""Float64 numpy references, written from the papers' formulas, independent of tfmargin's code:
per-sample loops, np.arccos, the SphereFace psi written out piecewise."""

import math

import numpy as np


def unit(x, axis=-1):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def psi(phi):
    """SphereFace's monotone extension of cos: (-1)^k cos(phi) - 2k, k = floor(phi / pi)."""
    k = math.floor(phi / math.pi)
    return (-1) ** k * math.cos(phi) - 2 * k


def margin_logits(emb, centers, labels, scale, m1=1.0, m2=0.0, m3=0.0):
    """m2 may be a scalar or one margin per sample."""
    emb, centers = unit(emb, 1), unit(centers, 0)
    cos = emb @ centers
    m2 = np.broadcast_to(np.asarray(m2, np.float64), (len(labels),))
    out = cos.copy()
    for i, y in enumerate(labels):
        c = min(max(cos[i, y], -1.0), 1.0)
        out[i, y] = psi(m1 * math.acos(c) + m2[i]) - m3
    return scale * out


def md_margins(teacher, centers, labels, m_max=0.5, m_min=0.2, d_max="batch", clip=False):
    t, w = unit(teacher, 1), unit(centers, 0)
    cos_t = np.array([t[i] @ w[:, y] for i, y in enumerate(labels)])
    dm = cos_t.max() if d_max == "batch" else d_max
    m = (m_max - m_min) / dm * cos_t + m_min
    return np.clip(m, m_min, m_max) if clip else m


def cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean([logp[i, y] for i, y in enumerate(labels)])


def kl_kd(teacher_logits, student_logits, T):
    def logsoftmax(z):
        z = np.asarray(z, np.float64) / T
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    lt, ls = logsoftmax(teacher_logits), logsoftmax(student_logits)
    return T * T * np.mean(np.sum(np.exp(lt) * (lt - ls), axis=1))


def distance(a, b, kind):
    a, b = unit(a), unit(b)
    c = float(np.clip(a @ b, -1.0, 1.0))
    return 2.0 - 2.0 * c if kind == "l2" else math.acos(c)


def triplet_distillation(student, teacher, labels, m_max, m_min, kind):
    """Brute force: every (a, p), its semi-hard negative (TF-Addons rule), teacher margin."""
    n = len(labels)
    ds = [[distance(student[i], student[j], kind) for j in range(n)] for i in range(n)]
    dt = [[distance(teacher[i], teacher[j], kind) for j in range(n)] for i in range(n)]
    pairs = []
    for a in range(n):
        negs = [k for k in range(n) if labels[k] != labels[a]]
        if not negs:
            continue
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [k for k in negs if ds[a][k] > ds[a][p]]
            neg = min(farther, key=lambda k: ds[a][k]) if farther else max(negs, key=lambda k: ds[a][k])
            pairs.append((a, p, neg))
    if not pairs:
        return 0.0
    gaps = [max(dt[a][k] - dt[a][p], 0.0) for a, p, k in pairs]
    dmax = max(max(gaps), 1e-6)
    total = 0.0
    for (a, p, k), gap in zip(pairs, gaps):
        m = (m_max - m_min) / dmax * gap + m_min
        total += max(ds[a][p] - ds[a][k] + m, 0.0)
    return total / len(pairs)


def triplet_distillation_facenet(student, teacher, labels, m_max, m_min, kind, noise):
    """Brute force of the authors' selection: for every (a, p), the margin-violating negative
    with the largest noise[a, p, n]; D_max over every (a, p, n) of the batch."""
    n = len(labels)
    ds = [[distance(student[i], student[j], kind) for j in range(n)] for i in range(n)]
    dt = [[distance(teacher[i], teacher[j], kind) for j in range(n)] for i in range(n)]
    triplets = [(a, p, k) for a in range(n) for p in range(n) for k in range(n)
                if p != a and labels[p] == labels[a] and labels[k] != labels[a]]
    if not triplets:
        return 0.0
    dmax = max(max(max(dt[a][k] - dt[a][p], 0.0) for a, p, k in triplets), 1e-6)

    def margin(a, p, k):
        return (m_max - m_min) / dmax * max(dt[a][k] - dt[a][p], 0.0) + m_min

    losses = []
    for a in range(n):
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            cands = [k for k in range(n) if labels[k] != labels[a]
                     and ds[a][k] - ds[a][p] < margin(a, p, k)]
            if cands:
                k = max(cands, key=lambda k: noise[a][p][k])
                losses.append(ds[a][p] - ds[a][k] + margin(a, p, k))
    return float(np.mean(losses)) if losses else 0.0


def numeric_grad(f, x, h=1e-6):
    """Central differences of scalar f at x (float64)."""
    x = np.array(x, np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g
