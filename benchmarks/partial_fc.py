"""Partial FC: an ArcFace head's forward + backward at 1,000,000 classes x 512-d, batch 128,
sampling 10 % of the classes per step vs computing all of them.

Each setting runs in its own child process of this script (same data, same seed), so that its
peak resident memory is its own: the (1M x 512) centers are 2 GB, the full head's (128 x 1M)
logits 0.5 GB a copy; three processes per setting, alternating. Reported: the median step
time of each process and the speed-up from the medians over all of them; the resident memory
once the centers are built and the peak during the steps (Linux /proc, the peak reset after the
setup; the first process of each setting), both over the centers' bytes; the kind of gradient
the centers get (the sampled rows only, or dense); and that the MarginDistillation head's
target logits (its per-sample margins at work) are the same in a sampled training step as in
a full one.
"""

import json
import os
import subprocess
import sys

import numpy as np

from benchmarks.common import proc_status_bytes, reset_peak_rss, result

NAME = "partial_fc"
DESCRIPTION = ("ArcFace head forward + backward at 1M classes x 512-d, batch 128: Partial FC "
               "sample_rate 0.1 vs every class; step time and peak memory")
SAMPLE_RATE = 0.1


def measure(sample_rate, num_classes, batch, dim, repeats):
    """Median seconds of one forward + backward (loss, d/d embeddings, d/d centers) and the
    process's peak RSS; run in a child process. The centers are (C, D) rows: the sampled
    step's gradient is the sampled rows only (IndexedSlices), the full step's a dense (C, D)."""
    import time

    import tensorflow as tf

    from tfmargin.heads import ArcFace, compile_loss

    rng = np.random.default_rng(0)
    head = ArcFace(num_classes, scale=64.0, sample_rate=sample_rate, sample_seed=0,
                   center_initializer="zeros")
    head.build([(None, dim), (None,)])
    head.assign_centers(rng.standard_normal((dim, num_classes), dtype=np.float32))
    emb = tf.Variable(rng.normal(size=(batch, dim)).astype("float32"))
    labels = tf.constant(rng.integers(0, num_classes, batch).astype("int32"))
    loss_fn = compile_loss(head)
    rows = head.center_rows.value

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, head([emb, labels], training=True))
        grads = tape.gradient(loss, [emb, rows])
        # IndexedSlices (sampled) or dense (full): what an optimiser is handed either way
        return loss, [tf.reduce_sum(g.values if hasattr(g, "values") else g) for g in grads]

    before = proc_status_bytes("VmRSS")  # the centers and the runtime, before any step
    reset_peak_rss()
    step()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, sums = step()
        float(loss), [float(s) for s in sums]
        times.append(time.perf_counter() - start)
    peak = proc_status_bytes("VmHWM")
    with tf.GradientTape() as tape:  # the kind of gradient, after the timing and the peak
        grad = tape.gradient(loss_fn(labels, head([emb, labels], training=True)), rows)
    gradient_rows = int(grad.values.shape[0]) if hasattr(grad, "values") else None
    return {"seconds": float(np.median(times)), "peak_rss_bytes": peak,
            "rss_before_steps_bytes": before, "loss": float(loss),
            "sampled_classes": int(head.num_sampled(batch)),
            "gradient_rows": gradient_rows}  # None: a dense gradient


def md_targets_unchanged(num_classes, batch, dim):
    """Max |difference| between the MarginDistillation head's target logits (where its
    per-sample margin acts) in a training step with sample_rate 0.1 and without sampling."""
    from keras import ops

    from tfmargin.heads import MarginDistillationHead

    rng = np.random.default_rng(1)
    centers = rng.normal(size=(dim, num_classes)).astype("float32")
    labels = rng.integers(0, num_classes, batch).astype("int32")
    teacher = (centers[:, labels].T + 0.5 * rng.normal(size=(batch, dim))).astype("float32")
    emb = rng.normal(size=(batch, dim)).astype("float32")
    full = MarginDistillationHead(centers)
    sampled = MarginDistillationHead(centers, sample_rate=SAMPLE_RATE, sample_seed=0)
    every = ops.convert_to_numpy(full([emb, labels, teacher], training=True))
    first = ops.convert_to_numpy(sampled([emb, labels, teacher], training=True))[:, 0]
    return float(np.max(np.abs(every[np.arange(batch), labels] - first)))


def _child(rate, num_classes, batch, dim, repeats):
    code = ("import json, sys; from benchmarks.partial_fc import measure; "
            f"print(json.dumps(measure({rate}, {num_classes}, {batch}, {dim}, {repeats})))")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if out.returncode:
        raise RuntimeError(f"partial_fc child (sample_rate {rate}) failed: "
                           + (out.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick=False, batch_size=None, repeats=None, processes=None, **_):
    batch = batch_size or (16 if quick else 128)
    steps = repeats or (2 if quick else 5)
    num_classes, dim = (20_000, 64) if quick else (1_000_000, 512)
    # the full step's time varies between processes on this machine (it allocates and frees
    # gigabytes a step; 2.50 s in one committed run, 5.2-5.4 s in the next), the sampled
    # step's much less: each setting runs in `processes` children, alternating, and the
    # speed-up is the ratio of the medians over all of them
    runs = {1.0: [], SAMPLE_RATE: []}
    for _ in range(processes or (1 if quick else 3)):
        for rate in runs:
            runs[rate].append(_child(rate, num_classes, batch, dim, steps))
    full, sampled = runs[1.0][0], runs[SAMPLE_RATE][0]
    seconds = {rate: float(np.median([r["seconds"] for r in done])) for rate, done in runs.items()}
    centers_bytes = num_classes * dim * 4
    details = {"num_classes": num_classes, "embedding_size": dim, "batch_size": batch,
               "sample_rate": SAMPLE_RATE, "timed_steps_each": steps,
               "sampled_classes": sampled["sampled_classes"],
               "centers_bytes": centers_bytes,
               "full": full, "sampled": sampled,  # the first process of each
               "seconds_per_process": {"full": [r["seconds"] for r in runs[1.0]],
                                       "sampled": [r["seconds"] for r in runs[SAMPLE_RATE]]},
               "median_seconds": {"full": seconds[1.0], "sampled": seconds[SAMPLE_RATE]},
               "peak_over_centers": {"full": full["peak_rss_bytes"] / centers_bytes,
                                     "sampled": sampled["peak_rss_bytes"] / centers_bytes},
               "step_memory_over_centers": {
                   k: (v["peak_rss_bytes"] - v["rss_before_steps_bytes"]) / centers_bytes
                   for k, v in (("full", full), ("sampled", sampled))},
               "md_target_logit_max_abs_difference": md_targets_unchanged(
                   min(num_classes, 100_000), batch, dim),
               "backend": "tensorflow"}
    return result(
        NAME, subject=f"Partial FC, sample_rate {SAMPLE_RATE}", baseline="every class",
        value=seconds[1.0] / seconds[SAMPLE_RATE], baseline_value=1.0,
        unit="speed-up (full step time / sampled step time)", higher_is_better=True, goal=5.0,
        details=details, command=f"python -m benchmarks.run --rows={NAME}")
