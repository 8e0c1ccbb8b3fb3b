"""Bench row: synthetic face generation rate (render + align + degrade + JPEG), N worker
processes against one, in the same process.

Goal: N worker processes reach at least 0.75 x N the one-process rate (start-up included), and
the demo-sized set (600 identities x 20 images) is projected to take well under a minute on 2
cores (`details.projected_demo_seconds`). Both runs must produce the same bytes
(`details.identical`). Cores taken by other jobs cap the ratio: `details.load_average_before`
records how busy the machine was.
"""

import hashlib
import os
import time

NAME = "synthetic_generation"
DESCRIPTION = "synthetic faces generated per second: N worker processes vs 1"
DEMO_IMAGES = 600 * 20


def _rate(identities, images, workers, seed, chunk):
    from tfmargin.datasets.synthetic import generate

    digest = hashlib.sha256()
    start = time.perf_counter()
    for index, encoded in generate(seed, range(identities), images, workers=workers, chunk=chunk):
        digest.update(index.to_bytes(8, "little"))
        for jpeg in encoded:
            digest.update(jpeg)
    seconds = time.perf_counter() - start
    return identities * images / seconds, seconds, digest.hexdigest()


def run(quick=False, workers=None, identities=None, images_per_identity=None, seed=0, **_):
    from benchmarks.common import result
    from tfmargin.datasets.synthetic.generate import available_cpus

    workers = workers or available_cpus()
    identities = identities or (4 if quick else 80)
    images = images_per_identity or (3 if quick else 20)
    chunk = 1 if quick else 4  # identities per task: quick runs still spread over the workers
    # Other jobs on the machine take cores from the workers: record how busy it was.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    _rate(1, 2, 1, seed, chunk)  # warm up TensorFlow (its first op) outside the timings
    single, single_s, single_hash = _rate(identities, images, 1, seed, chunk)
    multi, multi_s, multi_hash = _rate(identities, images, workers, seed, chunk)
    return result(
        NAME, subject=f"generate(workers={workers})", baseline="generate(workers=1)",
        value=multi, baseline_value=single, unit="images/s", higher_is_better=True,
        goal=0.75 * workers,
        details={"workers": workers, "identities": identities, "images_per_identity": images,
                 "images": identities * images, "seconds": multi_s, "baseline_seconds": single_s,
                 "identical": multi_hash == single_hash, "load_average_before": load,
                 "projected_demo_seconds": DEMO_IMAGES / multi},
        command=f"python -m benchmarks.run --rows={NAME}")
