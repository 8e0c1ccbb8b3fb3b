"""Row `data_pipeline`: the tf.data training pipeline from a .rec to ready batches, against a
plain Python loop decoding the same JPEGs with the same decoder, in the same process.

Subject: `train_dataset(.rec, batch_size)` (read records, decode, normalise to [-1, 1] float32,
batch, prefetch) over full epochs. Baseline: `tf.io.decode_jpeg` of the same JPEG bytes in a
Python loop on one core. Both are measured as images per CPU-second of this process (process
CPU time), i.e. the rate per core used, which stays meaningful on a machine shared with other
jobs; wall-clock images/s are recorded too, on all cores and on 1 thread (growth with cores).
ratio = pipeline per core / loop per core; the goal is >= 0.8.
"""

import os
import tempfile
import time

import numpy as np

NAME = "data_pipeline"
DESCRIPTION = "tf.data .rec -> batches, images/s per core vs a Python tf.io.decode_jpeg loop"


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _face_like_jpegs(n, size=112, seed=0):
    """Smooth colour patterns plus mild noise, JPEG q=90: about the entropy of aligned faces."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a = rng.uniform(0, 1, (3, 3))
        img = np.stack([np.sin(a[c, 0] * 9 * xx + a[c, 1] * 7 * yy + a[c, 2] * 6) * 100 + 120
                        for c in range(3)], -1) + rng.normal(0, 8, (size, size, 3))
        out.append(tf.io.encode_jpeg(np.clip(img, 0, 255).astype(np.uint8), quality=90).numpy())
    return out


def _timed(fn, repeats):
    """Best (wall images/s, images per CPU-second) of `repeats` runs of fn() -> images."""
    wall = cpu = 0.0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        w1, c1 = time.perf_counter(), time.process_time()
        wall, cpu = max(wall, n / (w1 - w0)), max(cpu, n / max(c1 - c0, 1e-9))
    return wall, cpu


def _loop(decode, jpegs, repeats):
    def once():
        for data in jpegs:
            decode(data)
        return len(jpegs)
    return _timed(once, repeats)


def _pipeline(path, batch_size, threads, repeats):
    import tensorflow as tf
    from tfmargin.data.pipeline import train_dataset
    ds = train_dataset(path, batch_size, seed=0)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    ds = ds.with_options(options)

    def once():
        return sum(int(y.shape[0]) for _, y in ds)

    once()  # warm-up epoch: page cache, tracing
    return _timed(once, repeats)


def run(quick=False, batch_size=None, repeats=None):
    import tensorflow as tf
    from tfmargin.bench.common import result
    from tfmargin.data.recordio import write_insightface_dataset

    n = 256 if quick else 6000
    batch_size = batch_size or (32 if quick else 256)
    repeats = repeats or (1 if quick else 3)
    cores = _cores()
    jpegs = _face_like_jpegs(n)
    with tempfile.TemporaryDirectory() as tmp:
        write_insightface_dataset(tmp, ((i % 100, j) for i, j in enumerate(jpegs)))
        path = os.path.join(tmp, "train.rec")
        jpeg_wall, jpeg_cpu = _loop(lambda d: tf.io.decode_jpeg(d, channels=3), jpegs, repeats)
        image_wall, image_cpu = _loop(
            lambda d: tf.io.decode_image(d, channels=3, expand_animations=False), jpegs, repeats)
        one_wall, one_cpu = _pipeline(path, batch_size, 1, repeats)
        full_wall, full_cpu = (_pipeline(path, batch_size, cores, repeats) if cores > 1
                               else (one_wall, one_cpu))
    # The pipeline decodes with DecodeImage (the same libjpeg path); the faster loop is the bar.
    raw_cpu = max(jpeg_cpu, image_cpu)
    return result(
        NAME,
        subject=f"train_dataset(.rec) images per CPU-second ({cores} threads)",
        baseline="Python loop of tf.io.decode_jpeg, images per CPU-second",
        value=full_cpu, baseline_value=raw_cpu, unit="images/s/core", higher_is_better=True,
        goal=0.8,
        details={
            "images": n, "batch_size": batch_size, "cores": cores, "repeats (best of)": repeats,
            "mean_jpeg_bytes": float(np.mean([len(j) for j in jpegs])),
            "pipeline_wall_images_per_s": full_wall,
            "pipeline_1_thread_wall_images_per_s": one_wall,
            "pipeline_1_thread_images_per_cpu_s": one_cpu,
            "wall_scaling_vs_1_thread": full_wall / one_wall,
            "wall_ratio_per_core": full_wall / cores / max(jpeg_wall, image_wall),
            "loop_decode_jpeg_wall_images_per_s": jpeg_wall,
            "loop_decode_image_wall_images_per_s": image_wall,
            "loop_decode_jpeg_images_per_cpu_s": jpeg_cpu,
            "pipeline_work": "pread records, decode, [-1,1] float32, batch, prefetch; no flip",
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        command="python -m tfmargin.cli.bench --rows=data_pipeline",
    )
