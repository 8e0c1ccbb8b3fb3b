"""Partial FC: an ArcFace head's forward + backward at 1,000,000 classes x 512-d, batch 128,
sampling 10 % of the classes per step vs computing all of them.

Each setting runs in its own child process of this script (same data, same seed), so that its
peak resident memory is its own: the (512 x 1M) centers are 2 GB, the full head's (128 x 1M)
logits 0.5 GB a copy. Reported: median step time; the resident memory once the centers are
built and the peak during the steps (Linux /proc, the peak reset after the setup), both over
the centers' bytes; and that the MarginDistillation head's target logits (its per-sample
margins at work) are the same in a sampled training step as in a full one.
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


def measure(sample_rate, num_classes, batch, dim, repeats, block_gradient=False):
    """Median seconds of one forward + backward (loss, d/d embeddings, d/d centers) and the
    process's peak RSS; run in a child process. `block_gradient`: the same sampled step with
    the centers' gradient taken to the gathered (D, K) block, not scattered into a dense
    (D, C) array: what the step would cost if the centers were stored as (C, D) rows with a
    row-sparse gradient, as arcface_torch stores them."""
    import time

    import tensorflow as tf

    from tfmargin.heads import ArcFace, compile_loss

    rng = np.random.default_rng(0)
    head = ArcFace(num_classes, scale=64.0, sample_rate=sample_rate, sample_seed=0,
                   center_initializer="zeros")
    head.build([(None, dim), (None,)])
    head.centers.assign(rng.standard_normal((dim, num_classes), dtype=np.float32))
    emb = tf.Variable(rng.normal(size=(batch, dim)).astype("float32"))
    labels = tf.constant(rng.integers(0, num_classes, batch).astype("int32"))
    loss_fn = compile_loss(head)

    @tf.function
    def step():
        if block_gradient:
            from tfmargin import margins

            index, columns = head.sample(labels, batch)
            block = tf.gather(head.centers, index, axis=1)
            with tf.GradientTape() as tape:
                tape.watch(block)
                cos = margins.cosine_logits(emb, block)
                logits = head.logits_from_cosines(cos, [emb, labels], 1.0, columns=columns)
                loss = loss_fn(labels, margins.target_first(logits, columns))
            grads = tape.gradient(loss, [emb, block])
        else:
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, head([emb, labels], training=True))
            grads = tape.gradient(loss, [emb, head.centers])
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
    return {"seconds": float(np.median(times)), "peak_rss_bytes": proc_status_bytes("VmHWM"),
            "rss_before_steps_bytes": before, "loss": float(loss),
            "sampled_classes": int(head.num_sampled(batch))}


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


def _child(rate, num_classes, batch, dim, repeats, block_gradient=False):
    code = ("import json, sys; from benchmarks.partial_fc import measure; "
            f"print(json.dumps(measure({rate}, {num_classes}, {batch}, {dim}, {repeats}, "
            f"{block_gradient})))")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if out.returncode:
        raise RuntimeError(f"partial_fc child (sample_rate {rate}) failed: "
                           + (out.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick=False, batch_size=None, repeats=None, **_):
    batch = batch_size or (16 if quick else 128)
    steps = repeats or (2 if quick else 5)
    num_classes, dim = (20_000, 64) if quick else (1_000_000, 512)
    full = _child(1.0, num_classes, batch, dim, steps)
    sampled = _child(SAMPLE_RATE, num_classes, batch, dim, steps)
    block = _child(SAMPLE_RATE, num_classes, batch, dim, steps, block_gradient=True)
    centers_bytes = num_classes * dim * 4
    details = {"num_classes": num_classes, "embedding_size": dim, "batch_size": batch,
               "sample_rate": SAMPLE_RATE, "timed_steps_each": steps,
               "sampled_classes": sampled["sampled_classes"],
               "centers_bytes": centers_bytes,
               "full": full, "sampled": sampled,
               # the sampled step without its dense (D, C) gradient (see measure)
               "sampled_block_gradient": block,
               "speed_up_with_block_gradient": full["seconds"] / block["seconds"],
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
        value=full["seconds"] / sampled["seconds"], baseline_value=1.0,
        unit="speed-up (full step time / sampled step time)", higher_is_better=True, goal=5.0,
        details=details, command=f"python -m benchmarks.run --rows={NAME}")
