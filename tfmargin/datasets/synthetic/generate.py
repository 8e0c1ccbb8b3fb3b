"""From (seed, identity index, image index) to an aligned, degraded, JPEG-encoded 112x112 face.

Every image draws from its own random stream, `default_rng([seed, stream, identity, image])`,
so an image's bytes depend only on those numbers and the difficulty, never on how many
processes generate the set or in which order.

Per identity: draw the Identity, render each image on a `render_size` canvas, align it to the
ArcFace template (`tfmargin.data.align.template`) with the least-squares similarity of its
known landmarks (plus detector-like jitter), then blur, sensor noise, and JPEG at the image's
quality (`tfmargin.data.images.encode_jpeg`).

The alignment is the one real faces get (`tfmargin.data.align`: closed-form least-squares
similarity and a float32 bilinear warp), without the final rounding, so the noise added
afterwards stays continuous; it computes the same bits on every CPU.

Worker processes are forked and run numpy only (TensorFlow is not fork-safe once it has run
an op; the parent may have); the parent JPEG-encodes what they return. A fork, unlike spawn or
a fork server, does not re-run the caller's main script, so scripts need no main guard.
"""

import math
import os

import numpy as np

from tfmargin.data.align import similarity_matrix, warp_affine
from tfmargin.datasets.synthetic.identity import (DEFAULT_DIFFICULTY, resolve_difficulty,
                                              sample_identity)
from tfmargin.datasets.synthetic.nuisance import sample_nuisance
from tfmargin.datasets.synthetic.canvas import TEMPLATE_SPAN
from tfmargin.datasets.synthetic.render import render

IDENTITY_STREAM = 0
IMAGE_STREAM = 1
PAIRS_STREAM = 2
DEFAULT_RENDER_SIZE = 176


def identity_for(seed, index, difficulty):
    return sample_identity(np.random.default_rng([seed, IDENTITY_STREAM, index]), difficulty)


def image_rng(seed, identity_index, image_index):
    return np.random.default_rng([seed, IMAGE_STREAM, identity_index, image_index])


def gaussian_blur(image, sigma):
    """Separable Gaussian blur of float32 (H, W, C) with edge padding; sums of shifted copies in
    a fixed order (no BLAS, no reductions), so the result is the same on every CPU."""
    if sigma <= 0.05:
        return image
    radius = max(1, math.ceil(2.5 * sigma))
    weights = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    total = sum(weights)
    weights = [np.float32(w / total) for w in weights]
    h, w = image.shape[:2]
    padded = np.pad(image, ((radius, radius), (0, 0), (0, 0)), mode="edge")
    rows = weights[0] * padded[0:h]
    for k in range(1, 2 * radius + 1):
        rows += weights[k] * padded[k:k + h]
    padded = np.pad(rows, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    out = weights[0] * padded[:, 0:w]
    for k in range(1, 2 * radius + 1):
        out += weights[k] * padded[:, k:k + w]
    return out


def render_identity_arrays(seed, index, num_images, difficulty=DEFAULT_DIFFICULTY,
                           render_size=DEFAULT_RENDER_SIZE, image_size=112):
    """Identity `index`'s images before JPEG: (uint8 (num_images, image_size, image_size, 3),
    [JPEG quality per image]). numpy only: what a worker process runs."""
    d = resolve_difficulty(difficulty)
    identity = identity_for(seed, index, d)
    images = np.empty((num_images, image_size, image_size, 3), np.uint8)
    qualities = []
    for j in range(num_images):
        rng = image_rng(seed, index, j)
        nuisance = sample_nuisance(rng, d)
        canvas, landmarks = render(identity, nuisance, render_size)
        # detector-like landmark error, given in template units
        pixels_per_unit = render_size / TEMPLATE_SPAN * nuisance.scale
        points = landmarks + nuisance.landmark_jitter * pixels_per_unit
        image = warp_affine(canvas, similarity_matrix(points, image_size), image_size)
        image = gaussian_blur(image, nuisance.blur * image_size / 112)
        # Luminance noise (one draw per pixel, shared by the channels): most of what a sensor
        # adds, at a third of the cost of per-channel draws.
        noise = rng.standard_normal(image.shape[:2], dtype=np.float32)
        noise *= np.float32(nuisance.noise)
        image += noise[..., None]
        image += np.float32(0.5)  # round, since the cast truncates
        images[j] = np.minimum(np.maximum(image, 0, out=image), 255, out=image)
        qualities.append(nuisance.jpeg_quality)
    return images, qualities


def encode_all(images, qualities):
    from tfmargin.data.images import encode_jpeg

    return [encode_jpeg(image, quality) for image, quality in zip(images, qualities)]


def render_identity(seed, index, num_images, difficulty=DEFAULT_DIFFICULTY,
                    render_size=DEFAULT_RENDER_SIZE, image_size=112, encode=True):
    """The `num_images` images of identity `index`: a list of JPEG bytes (encode=True) or the
    uint8 (num_images, image_size, image_size, 3) array that would be encoded."""
    images, qualities = render_identity_arrays(seed, index, num_images, difficulty, render_size,
                                               image_size)
    return encode_all(images, qualities) if encode else images


def available_cpus():
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _work(job):
    seed, indices, num_images, difficulty, render_size, image_size = job
    return [(i, *render_identity_arrays(seed, i, num_images, difficulty, render_size, image_size))
            for i in indices]


def generate(seed, indices, num_images, difficulty=DEFAULT_DIFFICULTY, workers=1, chunk=4,
             render_size=DEFAULT_RENDER_SIZE, image_size=112):
    """Yield (identity index, [JPEG bytes] * num_images) for `indices`, in order, rendered by
    `workers` forked processes (1, or a platform without fork: in this process), `chunk`
    identities per task. The bytes do not depend on `workers` or `chunk`."""
    import multiprocessing

    indices = [int(i) for i in indices]
    jobs = [(seed, indices[i:i + chunk], num_images, difficulty, render_size, image_size)
            for i in range(0, len(indices), chunk)]
    if workers <= 1 or len(jobs) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        results = map(_work, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(min(workers, len(jobs)))
        results = pool.imap(_work, jobs)
    try:
        for batch in results:
            for index, images, qualities in batch:
                yield index, encode_all(images, qualities)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
