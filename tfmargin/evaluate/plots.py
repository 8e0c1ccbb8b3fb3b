"""PNG charts with matplotlib (Agg, no display, no global pyplot state).

* `plot_roc`: ROC curves of several models (or artifacts) on one chart, FAR on a log scale.
* `plot_angle_histograms`: the angle between each embedding and its class center, for instance
  teacher vs student. MarginDistillation's margin grows with how close the teacher puts a sample
  to its center; this picture shows how much tighter the distilled student is than the plain one.
"""

import os

import numpy as np

from tfmargin.atomic import atomic_path
from tfmargin.evaluate.vectors import unit_rows


def _figure(width=6.4, height=4.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return os.fspath(path)


def plot_roc(curves, path, title="ROC", min_far=None):
    """Write ROC curves to `path` (PNG).

    curves: {label: VerificationResult or (fpr, tpr)}; the legend adds the accuracy when given a
    VerificationResult. min_far: left end of the log FAR axis (default: the smallest non-zero FAR
    of any curve, at least 1e-6).
    """
    if not curves:
        raise ValueError("plot_roc: no curves to plot")
    fig = _figure()
    ax = fig.add_subplot()
    smallest = 1.0
    for label, curve in curves.items():
        if hasattr(curve, "roc"):
            fpr, tpr = curve.roc
            label = f"{label} ({100 * curve.accuracy:.2f}%)"
        else:
            fpr, tpr = curve
        fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
        keep = fpr > 0  # log scale: FAR 0 cannot be drawn
        if keep.any():
            smallest = min(smallest, fpr[keep].min())
        ax.step(fpr[keep], tpr[keep], where="post", label=label)
    left = min_far if min_far else max(smallest, 1e-6)
    ax.set_xscale("log")
    ax.set_xlim(left, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def center_angles(embeddings, labels, centers):
    """Angle in degrees between each embedding and the center of its class (rows of `centers`,
    (C, D): a head's `center_rows`, or a teacher signal's (D, C) centers transposed)."""
    e = np.asarray(embeddings, np.float64)
    c = np.asarray(centers, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if e.ndim != 2 or c.ndim != 2 or e.shape[1] != c.shape[1]:
        raise ValueError(f"center_angles: embeddings {e.shape} and centers {c.shape} must be "
                         "(N, D) and (C, D)")
    if labels.size != e.shape[0]:
        raise ValueError(f"center_angles: {labels.size} labels for {e.shape[0]} embeddings")
    if labels.size and (labels.min() < 0 or labels.max() >= c.shape[0]):
        raise ValueError(f"center_angles: labels must be in [0, {c.shape[0]}), got "
                         f"[{labels.min()}, {labels.max()}]")
    cos = np.einsum("nd,nd->n", unit_rows(e), unit_rows(c)[labels])
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def plot_angle_histograms(angles, path, bins=90, title="Angle to the class center"):
    """Overlaid histograms (density) of angles in degrees, one per label, with their means.

    angles: {label: degrees}, e.g. {"teacher": center_angles(t, y, W), "student": ...}.
    """
    if not angles:
        raise ValueError("plot_angle_histograms: nothing to plot")
    fig = _figure()
    ax = fig.add_subplot()
    edges = np.linspace(0.0, 180.0, bins + 1)
    finite = np.concatenate([np.asarray(a, np.float64).ravel() for a in angles.values()])
    if finite.size:
        hi = min(180.0, np.percentile(finite, 99.9) + 5.0)
        edges = np.linspace(0.0, hi, bins + 1)
    for i, (label, a) in enumerate(angles.items()):
        a = np.asarray(a, np.float64).ravel()
        color = f"C{i}"
        ax.hist(a, bins=edges, density=True, alpha=0.45, color=color,
                label=f"{label} (mean {a.mean():.1f}°)" if a.size else label)
        if a.size:
            ax.axvline(a.mean(), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("angle between embedding and its class center (degrees)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)
