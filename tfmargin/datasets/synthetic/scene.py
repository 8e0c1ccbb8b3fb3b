"""Whole, unaligned photos of synthetic identities, with the landmarks the renderer knows: what
the face-ID pipeline (tfmargin.faceid) must detect or be told, then align itself.

    image, landmarks, box = render_scene(seed=0, index=270, image_index=0)
    write_scenes("photos/", seed=0, indices=[270, 271], photos_per_identity=3)
    # photos/id270_0.png + photos/id270_0.png.landmarks.json (LandmarksFile's format)

A scene is the image the training set's image j of identity i was cut from (same identity,
same pose, light and expression), scaled by 1.0-1.5 and placed at a random spot of a larger
smoothly shaded background, so the face is neither centred nor at the template's scale.
"""

import json
import os

import numpy as np

from tfmargin.data.align import warp_affine
from tfmargin.datasets.synthetic.generate import DEFAULT_RENDER_SIZE, identity_for, image_rng
from tfmargin.datasets.synthetic.identity import DEFAULT_DIFFICULTY, resolve_difficulty
from tfmargin.datasets.synthetic.nuisance import sample_nuisance
from tfmargin.datasets.synthetic.render import render

SCENE_STREAM = 3  # its own random stream: scenes never shift the dataset's images


def render_scene(seed, index, image_index, size=320, difficulty=DEFAULT_DIFFICULTY,
                 render_size=DEFAULT_RENDER_SIZE):
    """(uint8 (size, size, 3) RGB, float64 (5, 2) landmarks, (x, y, w, h) face box)."""
    d = resolve_difficulty(difficulty)
    identity = identity_for(seed, index, d)
    nuisance = sample_nuisance(image_rng(seed, index, image_index), d)
    canvas, landmarks = render(identity, nuisance, render_size)
    rng = np.random.default_rng([seed, SCENE_STREAM, index, image_index])
    scale = float(rng.uniform(1.0, 1.5))
    span = render_size * scale
    tx, ty = (float(v) for v in rng.uniform(0, size - span, 2))
    matrix = np.array([[scale, 0.0, tx], [0.0, scale, ty]])
    face = warp_affine(canvas, matrix, size)
    inside = warp_affine(np.ones((render_size, render_size, 1), np.float32), matrix, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1, c2 = (rng.uniform(40, 215, 3).astype(np.float32) for _ in range(3))
    background = c0 + xx[..., None] * (c1 - c0) + yy[..., None] * (c2 - c0)
    image = inside * face + (1 - inside) * background
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, landmarks * scale + [tx, ty], (tx, ty, span, span)


def write_scenes(output_dir, seed, indices, photos_per_identity, size=320,
                 difficulty=DEFAULT_DIFFICULTY, first_image=0):
    """PNG scenes plus PHOTO.landmarks.json beside each; returns {index: [paths]}."""
    from PIL import Image

    os.makedirs(output_dir, exist_ok=True)
    out = {}
    for index in indices:
        for j in range(first_image, first_image + photos_per_identity):
            image, landmarks, box = render_scene(seed, index, j, size, difficulty)
            path = os.path.join(output_dir, f"id{index}_{j}.png")
            Image.fromarray(image).save(path)
            with open(path + ".landmarks.json", "w") as f:
                json.dump([{"box": [round(v, 2) for v in box], "score": 1.0,
                            "landmarks": landmarks.round(3).tolist()}], f)
            out.setdefault(index, []).append(path)
    return out
