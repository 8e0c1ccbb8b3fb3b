"""Row `data_pipeline`: the tf.data training pipeline from a .rec to ready batches, against a
plain Python loop decoding the same JPEGs with the same decoder, in the same process.

Subject: `train_dataset(.rec, batch_size, repeat=True)`: read the records, decode to uint8,
convert to [-1, 1] float32, batch, prefetch (no flip). Each timed run is a fresh iterator over
`passes` passes of the image set, i.e. epochs as long as a training set's: an iterator that
stops discards the chunks it read ahead (about 4 batches), which a 6000-image epoch would
notice (~15% of it) and a real one (millions of images) does not; the short-epoch rate (one
pass per iterator) is recorded too. Baseline: a Python loop of
`tf.io.decode_jpeg` (and one of `tf.io.decode_image`, the op the pipeline uses; the faster loop
is the bar) over the same JPEG bytes, uint8 out, on one core. The images are already 112x112,
so neither side resizes. The float conversion is the pipeline's job and is counted against it.

Both are measured as images per CPU-second of this process (process CPU time), i.e. the rate
per core used, which stays meaningful on a machine shared with other jobs. Timings there are
still noisy, so the row runs `rounds` rounds, each timing the loops and the pipeline (all
threads, then 1 thread) back to back, and reports medians; `ratio_per_round` shows the spread.
ratio = pipeline per core / loop per core; the goal is >= 0.8. Wall-clock rates on all threads
against 1 thread show the growth with cores. `*_us_per_image` details split the pipeline's
CPU cost: the record reader and the float conversion measured alone.
"""

import os
import statistics
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


def _timed(fn):
    """(wall images/s, images per CPU-second) of one run of fn() -> images."""
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    w1, c1 = time.perf_counter(), time.process_time()
    return n / (w1 - w0), n / max(c1 - c0, 1e-9)


def _loop(decode, jpegs):
    def once():
        for data in jpegs:
            decode(data)
        return len(jpegs)
    return once


def _pipeline(path, batch_size, threads, batches=None):
    """One run: a fresh iterator over `batches` batches of the endless stream (several passes:
    long epochs, as in training), or over one epoch of the set when batches is None."""
    import tensorflow as tf
    from tfmargin.data.pipeline import train_dataset
    if batches is None:
        ds = train_dataset(path, batch_size, seed=0)
    else:
        ds = train_dataset(path, batch_size, seed=0, repeat=True).take(batches)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    ds = ds.with_options(options)

    def once():
        return sum(int(y.shape[0]) for _, y in ds)
    return once


def _cpu_us_per_image(fn, images):
    c0 = time.process_time()
    fn()
    return (time.process_time() - c0) / images * 1e6


def _parts(path, jpegs, batch_size):
    """CPU microseconds per image of the reader alone and of the float conversion alone."""
    import tensorflow as tf
    from tfmargin.data.pipeline import normalize
    from tfmargin.data.sources import IndexedSource
    src = IndexedSource(path)
    order = np.random.default_rng(0).permutation(len(src))

    def read():
        for i in range(0, len(order), batch_size):
            src.read_packed(order[i:i + batch_size])

    batch = tf.io.decode_jpeg(jpegs[0], channels=3)[None] + tf.zeros(
        [batch_size, 1, 1, 1], tf.uint8)

    def convert():
        for _ in range(len(jpegs) // batch_size):
            normalize(batch)

    read()
    convert()
    return (_cpu_us_per_image(read, len(order)),
            _cpu_us_per_image(convert, len(jpegs) // batch_size * batch_size))


def run(quick=False, batch_size=None, rounds=None, images=None, passes=None):
    import tensorflow as tf
    from benchmarks.common import result
    from tfmargin.data.recordio import write_insightface_dataset

    n = images or (256 if quick else 6000)
    batch_size = batch_size or (32 if quick else 256)
    rounds = rounds or (1 if quick else 5)
    passes = passes or (1 if quick else 4)
    cores = _cores()
    jpegs = _face_like_jpegs(n)
    with tempfile.TemporaryDirectory() as tmp:
        write_insightface_dataset(tmp, ((i % 100, j) for i, j in enumerate(jpegs)))
        path = os.path.join(tmp, "train.rec")
        runs = {
            "loop_decode_jpeg": _loop(lambda d: tf.io.decode_jpeg(d, channels=3), jpegs),
            "loop_decode_image": _loop(
                lambda d: tf.io.decode_image(d, channels=3, expand_animations=False), jpegs),
            "pipeline": _pipeline(path, batch_size, cores, passes * (n // batch_size)),
            "pipeline_1_thread": _pipeline(path, batch_size, 1, passes * (n // batch_size)),
            "pipeline_short_epochs": _pipeline(path, batch_size, cores),
        }
        for fn in runs.values():
            fn()  # warm-up: page cache, tracing, autotuning
        measured = {name: [] for name in runs}
        for _ in range(rounds):  # interleaved, so load from other jobs hits every side alike
            for name, fn in runs.items():
                measured[name].append(_timed(fn))
        reader_us, convert_us = _parts(path, jpegs, batch_size)

    def median(name, which):
        return statistics.median(m[which] for m in measured[name])

    loop_cpu = [max(j[1], i[1]) for j, i in zip(measured["loop_decode_jpeg"],
                                                measured["loop_decode_image"])]
    per_round = [p[1] / b for p, b in zip(measured["pipeline"], loop_cpu)]
    full_cpu, raw_cpu = median("pipeline", 1), statistics.median(loop_cpu)
    full_wall, one_wall = median("pipeline", 0), median("pipeline_1_thread", 0)
    raw_wall = max(median("loop_decode_jpeg", 0), median("loop_decode_image", 0))
    return result(
        NAME,
        subject=f"train_dataset(.rec) images per CPU-second ({cores} threads)",
        baseline="Python loop of tf.io.decode_jpeg, images per CPU-second",
        value=full_cpu, baseline_value=raw_cpu, unit="images/s/core", higher_is_better=True,
        goal=0.8,
        details={
            "images": n, "batch_size": batch_size, "cores": cores, "rounds (medians)": rounds,
            "passes_per_run": passes,
            "mean_jpeg_bytes": float(np.mean([len(j) for j in jpegs])),
            "ratio_per_round": per_round,
            "ratio_min": min(per_round), "ratio_max": max(per_round),
            "pipeline_wall_images_per_s": full_wall,
            "pipeline_1_thread_wall_images_per_s": one_wall,
            "pipeline_1_thread_images_per_cpu_s": median("pipeline_1_thread", 1),
            "pipeline_short_epoch_images_per_cpu_s": median("pipeline_short_epochs", 1),
            "wall_scaling_vs_1_thread": full_wall / one_wall,
            "wall_ratio_per_core": full_wall / cores / raw_wall,
            "loop_decode_jpeg_wall_images_per_s": median("loop_decode_jpeg", 0),
            "loop_decode_image_wall_images_per_s": median("loop_decode_image", 0),
            "loop_decode_jpeg_images_per_cpu_s": median("loop_decode_jpeg", 1),
            "loop_decode_image_images_per_cpu_s": median("loop_decode_image", 1),
            "pipeline_us_per_image": 1e6 / full_cpu,
            "loop_us_per_image": 1e6 / raw_cpu,
            "reader_us_per_image": reader_us,
            "float_conversion_us_per_image": convert_us,
            "pipeline_work": "pread records, decode, [-1,1] float32, batch, prefetch; no flip",
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        command="python -m benchmarks.run --rows=data_pipeline",
    )
