"""Teacher-signal extraction with 2 workers vs 1, on this machine: images/s of
`python -m tfmargin.cli.teacher` for a MobileFaceNet teacher (512-d) over synthetic faces.

The 1-worker run is one command; the 2-worker run is two commands started together
(--num_workers=2, --worker_index=0/1), the last one writing the manifest. Wall time from start
to the manifest, process start-up included, as a user sees it. Both write the same shards.
"""

import os
import subprocess
import sys
import time
import warnings

import numpy as np

from benchmarks.common import result

NAME = "teacher_signal"
DESCRIPTION = ("teacher-signal extraction (MobileFaceNet teacher) with 2 worker processes vs "
               "1, images/s")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(root, identities, images_per_identity):
    import keras

    from tfmargin.data.sources import IndexedSource
    from tfmargin.datasets.synthetic import write_dataset
    from tfmargin.models import build_backbone

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no held-out sets wanted
        write_dataset(os.path.join(root, "data"), identities, images_per_identity, seed=0,
                      split={"train": 1.0}, workers=1)
    keras.utils.set_random_seed(0)
    teacher = os.path.join(root, "teacher.keras")
    build_backbone("mobilefacenet", name="backbone").save(teacher)
    centers = os.path.join(root, "centers.npy")
    np.save(centers, np.random.default_rng(0).normal(size=(512, identities)).astype("float32"))
    return teacher, centers, len(IndexedSource(os.path.join(root, "data", "train.rec")))


def _extract(teacher, centers, data, output, workers, shards):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    args = [sys.executable, "-m", "tfmargin.cli.teacher", f"--teacher={teacher}",
            f"--centers={centers}", f"--data={data}", f"--output={output}",
            f"--shards={shards}", "--batch_size=32", "--noprogress", f"--num_workers={workers}"]
    start = time.perf_counter()
    procs = [subprocess.Popen(args + [f"--worker_index={i}"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError("teacher_signal bench: worker failed: "
                               + (err.strip().splitlines() or ["?"])[-1])
    seconds = time.perf_counter() - start
    if not os.path.exists(os.path.join(output, "manifest.json")):
        raise RuntimeError(f"teacher_signal bench: {output} has no manifest after the workers")
    return seconds


def run(quick=False, repeats=None, **_):
    import tempfile

    from tfmargin.distill import load_teacher_signal

    identities, per = (6, 4) if quick else (40, 20)
    rounds = repeats or 1
    with tempfile.TemporaryDirectory(prefix="tfmargin-bench-signal-") as root:
        teacher, centers, n = _setup(root, identities, per)
        data = os.path.join(root, "data", "train.rec")
        times = {1: [], 2: []}
        for r in range(rounds):  # alternate, so that drift in machine load hits both alike
            for workers in (1, 2):
                out = os.path.join(root, f"signal-{workers}-{r}")
                times[workers].append(_extract(teacher, centers, data, out, workers, shards=8))
        shards = [load_teacher_signal(os.path.join(root, f"signal-{w}-0")).manifest["shards"]
                  for w in (1, 2)]
        same_layout = [(s["file"], s["records"]) for s in shards[0]] == [
            (s["file"], s["records"]) for s in shards[1]]
    rate = {w: n / float(np.median(t)) for w, t in times.items()}
    return result(
        NAME, subject="2 worker processes", baseline="1 process", value=rate[2],
        baseline_value=rate[1], unit="images/s", higher_is_better=True,
        details={"images": n, "shards": 8, "batch_size": 32, "rounds": rounds,
                 "seconds": {str(k): v for k, v in times.items()},
                 "same_shard_layout": same_layout, "teacher": "mobilefacenet w1 relu 512-d"},
        command=f"python -m benchmarks.run --rows={NAME}")
