"""The teacher report: top-1 against the centers and cosines to the own center, against an
independent per-image loop, and the CLI that prints it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfmargin.evaluate.teacher import center_statistics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_center_statistics_against_a_loop(rng):
    emb = rng.normal(size=(50, 6))
    centers = rng.normal(size=(6, 4)) * rng.uniform(0.5, 3, size=4)
    labels = rng.integers(0, 4, 50)
    emb[:30] += 3 * (centers / np.linalg.norm(centers, axis=0))[:, labels[:30]].T  # some near
    top1, own = center_statistics(emb, labels, centers, chunk=7)  # chunks of 7 rows
    hits, cosines = 0, []
    for e, y in zip(emb, labels):
        cos = [float(e @ centers[:, j]) / (np.linalg.norm(e) * np.linalg.norm(centers[:, j]))
               for j in range(4)]
        hits += int(np.argmax(cos) == y)
        cosines.append(cos[y])
    assert top1 == hits / 50
    np.testing.assert_allclose(own, cosines, rtol=1e-12)
    with pytest.raises(ValueError, match="labels span 0..4 but the head has 4 centers"):
        center_statistics(emb, np.r_[labels[:-1], 4], centers)


@pytest.fixture(scope="module")
def teacher_file(synthetic, tmp_path_factory):
    import keras

    from tests.train import tiny
    from tfmargin.train import TrainConfig, build_teacher

    tiny.register()
    keras.utils.set_random_seed(5)
    config = TrainConfig(role="teacher", backbone=tiny.NAME, embedding_size=16, scale=16.0,
                         data=str(synthetic), softmax_warmup_steps=2, margin_ramp_steps=2)
    built = build_teacher(config, num_classes=14)
    path = tmp_path_factory.mktemp("teacher") / "classifier.keras"
    built.model.save(path)
    return path, built


def test_report_matches_the_model_called_directly(teacher_file, synthetic):
    import keras

    from tfmargin.data.feed import load_rec_arrays
    from tfmargin.evaluate.teacher import teacher_report

    path, built = teacher_file
    report = teacher_report(path, synthetic, bins=[os.path.join(synthetic, "val.bin")])
    images, labels = load_rec_arrays(os.path.join(synthetic, "train.rec"))
    emb = keras.ops.convert_to_numpy(built.backbone((images.astype("float32") - 127.5) / 127.5))
    centers = keras.ops.convert_to_numpy(built.head.centers)
    top1, own = center_statistics(emb, labels, centers)
    assert report.images == len(labels) == 70 and report.classes == 14
    assert report.top1 == pytest.approx(top1, abs=1 / 70)  # float32 ties at most
    assert report.median_cos == pytest.approx(float(np.median(own)), abs=1e-5)
    assert set(report.sets) == {"val"} and 0 <= report.sets["val"].accuracy <= 1
    assert report.passed == (top1 >= 0.9 and np.median(own) >= 0.5)
    subset = teacher_report(path, synthetic, max_images=20)
    assert subset.images == 20 and subset.sets == {}


@pytest.mark.slow
def test_cli_teacher_report(teacher_file, synthetic, tmp_path):
    path, _ = teacher_file
    out = tmp_path / "report.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "tfmargin.cli.evaluate", "--teacher_report", f"--model={path}",
         f"--data={synthetic}", f"--bins={os.path.join(synthetic, 'test.bin')}",
         f"--output_json={out}", "--noprogress"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads(out.read_text())
    assert "top-1 of training images against the centers" in proc.stdout
    assert f"{saved['top1']:.4f}" in proc.stdout and set(saved["sets"]) == {"test"}
