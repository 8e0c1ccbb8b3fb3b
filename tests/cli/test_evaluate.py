"""python -m tfmargin.cli.evaluate end to end, against an independent in-process computation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.evaluate import reference as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model():
    inp = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(16)(x))


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "tfmargin.cli.evaluate", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


def _embed_reference(model, images):
    """model called directly: l2n(f(x) + f(flip x)) with x = (u8 - 127.5) / 127.5."""
    x = (images.astype(np.float32) - 127.5) / 127.5
    e = model(x, training=False).numpy() + model(x[:, :, ::-1], training=False).numpy()
    return ref.normalize(e)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from tfmargin.data import save_verification_bin

    d = tmp_path_factory.mktemp("cli_eval")
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    model = _model()
    model.save(str(d / "m.keras"))
    model.export(str(d / "sm"), format="tf_saved_model", verbose=False)
    for name, n in (("lfw", 40), ("agedb_30", 30)):
        base = rng.integers(0, 256, (n, 112, 112, 3)).astype(np.int16)
        issame = rng.random(n) < 0.5
        other = np.where(issame[:, None, None, None], base + rng.integers(-60, 60, base.shape),
                         rng.integers(0, 256, base.shape))
        images = np.clip(np.stack([base, other], 1).reshape(2 * n, 112, 112, 3), 0, 255)
        save_verification_bin(str(d / f"{name}.bin"), images.astype(np.uint8), issame)
    # Identification directory: images everywhere, distractors over two files.
    ident = d / "ident"
    os.makedirs(ident / "distractors")
    gallery = rng.integers(0, 256, (6, 112, 112, 3), dtype=np.uint8)
    probe = np.clip(gallery.astype(np.int16) + rng.integers(-90, 90, gallery.shape), 0, 255)
    probe = probe.astype(np.uint8)
    np.savez(ident / "probe.npz", images=probe, labels=np.arange(6))
    np.savez(ident / "gallery.npz", images=gallery, labels=np.arange(6))
    distractors = rng.integers(0, 256, (25, 112, 112, 3), dtype=np.uint8)
    np.save(ident / "distractors" / "000.npy", distractors[:10])
    np.save(ident / "distractors" / "001.npy", distractors[10:])
    return {"dir": d, "model": model, "probe": probe, "gallery": gallery,
            "distractors": distractors}


def test_cli_matches_reference_for_every_artifact(workdir):
    from tfmargin.data.verification_bin import load_verification_bin

    d = workdir["dir"]
    out = d / "eval.json"
    proc = _run(f"--model={d / 'm.keras'},{d / 'sm'}",
                f"--bins={d / 'lfw.bin'},{d / 'agedb_30.bin'}",
                f"--identification={d / 'ident'}", "--folds=5", "--batch_size=16",
                f"--output_json={out}", f"--roc_plot={d / 'roc.png'}", "--noprogress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| model | set | pairs | accuracy (%) |" in proc.stdout
    assert "| model | probes | distractors | rank-1 (%)" in proc.stdout
    report = json.loads(out.read_text())
    keras_entry = report["models"][str(d / "m.keras")]
    saved_entry = report["models"][str(d / "sm")]
    assert keras_entry["artifact"] == "keras" and saved_entry["artifact"] == "saved_model"

    for name in ("lfw", "agedb_30"):
        images, issame = load_verification_bin(str(d / f"{name}.bin"))
        e = _embed_reference(workdir["model"], images)
        acc, _ = ref.calculate_roc(np.arange(0, 4, 0.01), e[0::2], e[1::2], issame, nrof_folds=5)
        got = keras_entry["sets"][name]
        assert got["accuracy"] == pytest.approx(np.mean(acc), abs=1e-12)
        assert got["accuracy_std"] == pytest.approx(np.std(acc), abs=1e-12)
        # The same weights exported give the same numbers.
        assert saved_entry["sets"][name]["accuracy"] == got["accuracy"]
        assert saved_entry["sets"][name]["tar_at_far"] == got["tar_at_far"]

    # Identification: brute force over reference embeddings.
    m = workdir["model"]
    p = _embed_reference(m, workdir["probe"])
    g = _embed_reference(m, workdir["gallery"])
    x = _embed_reference(m, workdir["distractors"])
    s = p @ g.T
    mate = np.diag(s)
    rank = 1 + np.sum(s >= mate[:, None], axis=1) - 1 + np.sum(p @ x.T >= mate[:, None], axis=1)
    for k in (1, 5, 10):
        assert keras_entry["identification"]["accuracy"][str(k)] == np.mean(rank <= k)
    assert keras_entry["identification"]["num_distractors"] == 25
    with open(d / "roc.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_cli_errors_are_one_line(workdir, tmp_path):
    d = workdir["dir"]
    proc = _run(f"--model={d / 'm.keras'}", f"--bins={tmp_path / 'missing.bin'}",
                f"--output_json={tmp_path / 'x.json'}")
    assert proc.returncode == 1
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "missing.bin does not exist" in lines[0]
    assert not (tmp_path / "x.json").exists()
