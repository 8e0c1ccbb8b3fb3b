"""python -m tfmargin.cli.teacher: a run read back against model.predict, and one-line errors
that name the flag at fault."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.distill.test_signal import (DIM, assert_close, predict, raw_records,  # noqa: E402
                                     reference_images, tiny_teacher)
from tfmargin.data.images import encode_png  # noqa: E402
from tfmargin.data.recordio import RecordIOWriter, write_insightface_dataset  # noqa: E402
from tfmargin.distill import load_teacher_signal  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, KERAS_BACKEND="tensorflow")
    return subprocess.run([sys.executable, "-m", "tfmargin.cli.teacher", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_teacher")
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), 4)
    images = rng.integers(0, 256, (12, 112, 112, 3), dtype=np.uint8)
    write_insightface_dataset(str(d / "data"), [(int(lab), encode_png(im))
                                                for lab, im in zip(labels, images)])
    # No header, no property: the class count is unknown and labels go up to 2.
    with RecordIOWriter(str(d / "bare" / "train.rec")) as w:
        for lab, im in zip(labels, images):
            w.write(encode_png(im), int(lab))
    teacher = tiny_teacher(3, seed=4)
    teacher.save(str(d / "teacher.keras"))
    np.save(str(d / "centers_16.npy"), np.ones((16, 3), np.float32))
    np.save(str(d / "centers_2.npy"), np.ones((DIM, 2), np.float32))
    return {"dir": d, "rec": str(d / "data" / "train.rec"), "bare": str(d / "bare" / "train.rec"),
            "teacher": str(d / "teacher.keras"), "model": teacher}


def test_extracts_the_signal(files):
    out = str(files["dir"] / "signal")
    r = run_cli(f"--teacher={files['teacher']}", f"--data={files['rec']}", f"--output={out}",
                "--flip", "--shards=2", "--batch_size=5", "--shuffle", "--seed=2", "--noprogress")
    assert r.returncode == 0, r.stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert "12 images, 3 classes" in summary and "2 shards" in summary and out in summary
    s = load_teacher_signal(out, dataset=files["rec"], teacher=files["teacher"])
    assert s.flip and len(s.files) == 2 and s.manifest["shuffle"] == {"seed": 2}
    images, labels, keys, _ = reference_images(files["rec"])
    backbone = files["model"].get_layer("backbone")
    records = raw_records(s.files)
    order = [keys.index(r["key"]) for r in records]
    permutation = np.random.default_rng(2).permutation(12)  # dealt round robin to 2 shards
    assert order == list(permutation[0::2]) + list(permutation[1::2])
    assert [r["label"] for r in records] == list(labels[order])
    assert_close(np.stack([r["teacher"] for r in records]), predict(backbone, images)[order])
    assert_close(np.stack([r["teacher_flip"] for r in records]),
                 predict(backbone, images[:, :, ::-1])[order])


@pytest.mark.parametrize("flag, args, words", [
    ("teacher", ["--data=X", "--output=Y"], ["is required"]),
    ("teacher", ["--teacher=nope.keras", "--data=X", "--output=Y"], ["nope.keras"]),
    ("data", ["--teacher=TEACHER", "--data=nowhere.rec", "--output=Y"], ["nowhere.rec"]),
    ("output", ["--teacher=TEACHER", "--data=REC", "--output=TEACHER"], ["not a directory"]),
    ("batch_size", ["--teacher=TEACHER", "--data=REC", "--output=Y", "--batch_size=0"], [">= 1"]),
    ("shards", ["--teacher=TEACHER", "--data=REC", "--output=Y", "--shards=0"], [">= 1"]),
    ("centers", ["--teacher=TEACHER", "--data=REC", "--output=Y", "--centers=no.npy"],
     ["no.npy"]),
])
def test_flag_errors_before_any_work(files, flag, args, words):
    args = [a.replace("TEACHER", files["teacher"]).replace("REC", files["rec"])
            .replace("=Y", f"={files['dir'] / 'never'}") for a in args]
    r = run_cli(*args)
    assert r.returncode == (2 if flag == "output" else 1)  # an unwritable output is bad usage
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: --{flag}: ")
    assert all(w in line for w in words), line
    assert not os.path.exists(files["dir"] / "never")


def test_size_and_label_errors_name_the_flag(files):
    never = str(files["dir"] / "never")
    r = run_cli(f"--teacher={files['teacher']}", f"--data={files['rec']}", f"--output={never}",
                f"--centers={files['dir'] / 'centers_16.npy'}")
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and line.startswith("error: --centers: "), r.stderr
    assert f"embeds into {DIM} dimensions" in line and "16 x 3" in line
    r = run_cli(f"--teacher={files['teacher']}", f"--data={files['bare']}", f"--output={never}",
                f"--centers={files['dir'] / 'centers_2.npy'}")
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and line.startswith("error: --data: "), r.stderr
    assert files["bare"] in line and "record 8 has label 2" in line  # keys 0.., labels 0,0,0,0,1..
    assert not os.path.exists(never)
