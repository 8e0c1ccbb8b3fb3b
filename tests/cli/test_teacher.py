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


def _noise_dataset(directory, per_class, seed):
    """A .rec of 3 classes x `per_class` random PNG images; returns (labels, images)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    images = rng.integers(0, 256, (len(labels), 112, 112, 3), dtype=np.uint8)
    write_insightface_dataset(str(directory), [(int(lab), encode_png(im))
                                               for lab, im in zip(labels, images)])
    return labels, images


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_teacher")
    labels, images = _noise_dataset(d / "data", 4, seed=5)
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


@pytest.fixture(scope="module")
def larger(tmp_path_factory, files):
    """96 images in 8 shards: enough steps for a kill to land between them."""
    d = tmp_path_factory.mktemp("cli_teacher_kill")
    _noise_dataset(d / "data", 32, seed=6)
    args = [f"--teacher={files['teacher']}", f"--data={d / 'data' / 'train.rec'}", "--shards=8",
            "--batch_size=4", "--noprogress"]
    reference = str(d / "reference")
    r = run_cli(*args, f"--output={reference}")
    assert r.returncode == 0, r.stderr
    return {"dir": d, "args": args, "reference": reference}


def _same_signal(directory, reference):
    """Shard for shard the same records; the embeddings equal up to float jitter (TensorFlow's
    CPU kernels do not give bit-identical outputs from one process to the next)."""
    a, b = load_teacher_signal(directory), load_teacher_signal(reference)
    assert [(s["file"], s["records"]) for s in a.manifest["shards"]] == [
        (s["file"], s["records"]) for s in b.manifest["shards"]]
    ra, rb = raw_records(a.files), raw_records(b.files)
    assert [(r["shard"], r["position"], r["key"], r["label"]) for r in ra] == [
        (r["shard"], r["position"], r["key"], r["label"]) for r in rb]
    assert_close(np.stack([r["teacher"] for r in ra]), np.stack([r["teacher"] for r in rb]))


def _start(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, KERAS_BACKEND="tensorflow")
    return subprocess.Popen([sys.executable, "-m", "tfmargin.cli.teacher", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _done_shards(stage):
    if not os.path.isdir(stage):
        return {}
    return {n[:-5]: os.stat(os.path.join(stage, n[:-5]))
            for n in os.listdir(stage) if n.endswith(".tfrecord.json")}


def test_sigkill_at_random_points_resumes_shard_by_shard(larger):
    """Each trial kills the command with SIGKILL once a random number of shards is done (or
    at once, or while it merges); at no point is there a manifest over a partial set, and the
    next run never embeds a finished, verified shard again. The final signal is the
    uninterrupted run's, shard for shard."""
    import signal
    import time

    rng = np.random.default_rng(0)
    out = str(larger["dir"] / "killed")
    stage = out + ".partial"
    args = larger["args"] + [f"--output={out}"]
    for trial in range(4):
        target = int(rng.integers(0, 9))  # shards finished before the kill (8: while merging)
        kept = _done_shards(stage)
        proc = _start(args)
        deadline = time.time() + 120
        while proc.poll() is None and len(_done_shards(stage)) < target \
                and time.time() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if os.path.exists(os.path.join(out, "manifest.json")):  # only ever a whole signal
            _same_signal(out, larger["reference"])
        for name, st in kept.items():  # never re-embedded
            now = _done_shards(stage).get(name) or os.stat(os.path.join(out, name))
            assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), name
        if os.path.exists(os.path.join(out, "manifest.json")):
            break
    r = run_cli(*args)  # finish (or, when done already, find it done)
    assert r.returncode == 0, r.stderr
    _same_signal(out, larger["reference"])
    assert not os.path.exists(stage)


def test_two_workers_then_merge(larger):
    out = str(larger["dir"] / "workers")
    args = larger["args"] + [f"--output={out}", "--num_workers=2"]
    r = run_cli(*args, "--worker_index=1")
    assert r.returncode == 0, r.stderr
    assert "the last one to finish (or --merge) writes the manifest" in r.stdout
    r = run_cli(f"--output={out}", "--merge")
    assert r.returncode == 1 and "4 of 8 shards missing" in r.stderr.strip().splitlines()[-1]
    r = run_cli(*args, "--worker_index=0")  # the last worker merges
    assert r.returncode == 0, r.stderr
    _same_signal(out, larger["reference"])
    r = run_cli(f"--output={out}", "--merge")  # nothing left to merge
    line = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and line.startswith("error: --output: ") and "no extraction" in line
