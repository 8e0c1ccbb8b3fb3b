"""The demo pipeline at toy size: teacher -> teacher signal -> both students, and its report."""

import numpy as np
import pytest

from tests import reference as ref
from tfmargin import demo
from tfmargin.cli.demo import format_report


@pytest.fixture(scope="module")
def results():
    return demo.run(teacher="mobilefacenet", num_classes=4, per_class=4, epochs=2, teacher_epochs=1,
                    batch_size=8, log=lambda *_: None)


def test_demo_runs_end_to_end(results):
    assert results["centers_frozen"] is True
    assert set(results["curves"]) == {"teacher (ArcFace)", "margin_distillation", "arcface"}
    for curve in results["curves"].values():
        assert all(np.isfinite(curve["loss"]))
    assert results["sizes"]["mobilefacenet"]["params"] == pytest.approx(1.21e6, rel=0.01)
    # The sample closest to its center gets m_max exactly (DESIGN.md §1, no clipping).
    assert results["margins"]["max"] == pytest.approx(0.5, abs=1e-5)
    report = format_report(results)
    assert "| 2 |" in report and "margin_distillation" in report


def test_toy_images_carry_their_class():
    images, labels = demo.toy_images(3, 5, seed=1)
    assert images.shape == (15, 112, 112, 3) and images.min() >= -1 and images.max() <= 1
    means = np.stack([images[labels == c].mean(axis=0).ravel() for c in range(3)])
    # Same-class images sit closer to their own class mean than to another's.
    for img, y in zip(images, labels):
        d = [np.linalg.norm(img.ravel() - m) for m in means]
        assert int(np.argmin(d)) == y
    assert np.all(np.bincount(labels) == 5)
    assert ref.unit(means[0]) @ ref.unit(means[1]) < 0.9
