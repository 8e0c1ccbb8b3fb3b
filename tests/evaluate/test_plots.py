"""Plots are written as PNG files; center angles against a direct float64 computation."""

import numpy as np
import pytest

from tfmargin.evaluate import verification
from tfmargin.evaluate.plots import center_angles, plot_angle_histograms, plot_roc

PNG = b"\x89PNG\r\n\x1a\n"


def test_roc_png_of_several_models(rng, tmp_path):
    issame = rng.random(800) < 0.5
    a = rng.standard_normal((800, 8))
    curves = {}
    for name, noise in (("teacher", 0.5), ("student", 1.5)):
        b = np.where(issame[:, None], a + noise * rng.standard_normal((800, 8)),
                     rng.standard_normal((800, 8)))
        curves[name] = verification(a, b, issame)
    curves["raw"] = ([0.0, 0.01, 0.5, 1.0], [0.0, 0.3, 0.9, 1.0])
    path = plot_roc(curves, str(tmp_path / "sub" / "roc.png"))
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    assert not (tmp_path / "sub" / "roc.png.tmp").exists()


def test_center_angles_and_histograms(rng, tmp_path):
    centers = rng.standard_normal((5, 16))
    labels = rng.integers(0, 5, 300)
    teacher = centers[labels] + 0.3 * rng.standard_normal((300, 16))
    student = centers[labels] + 1.0 * rng.standard_normal((300, 16))
    t = center_angles(teacher, labels, 3.0 * centers)  # scale of centers does not matter
    expected = [np.degrees(np.arccos(np.dot(e, centers[y]) / np.linalg.norm(e)
                                     / np.linalg.norm(centers[y])))
                for e, y in zip(teacher, labels)]
    np.testing.assert_allclose(t, expected, atol=1e-9)
    s = center_angles(student, labels, centers)
    assert s.mean() > t.mean()
    path = plot_angle_histograms({"teacher": t, "student": s}, str(tmp_path / "angles.png"))
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        center_angles(teacher, labels + 5, centers)
