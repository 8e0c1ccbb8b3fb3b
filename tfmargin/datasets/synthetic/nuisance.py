"""What changes from one photo of a person to the next: the person's own appearance drift, pose,
light, expression, occlusion, background, camera. Every range is scaled by `Difficulty.nuisance`
(0 = the same frontal, neutral, clean picture of a person every time, on a plain grey scene).
"""

import dataclasses
import math

import numpy as np

from tfmargin.datasets.synthetic.identity import (DEFAULT_DIFFICULTY, NUM_Z, exp_libm, map_libm,
                                              resolve_difficulty)


@dataclasses.dataclass(frozen=True)
class Nuisance:
    """One image's conditions. Angles in radians, lengths in template units (112-px crop)."""
    # the person's own variation between photos (weight, age, make-up, tan, hair): added to the
    # identity vector, see identity.vary
    appearance: np.ndarray  # (NUM_Z,)
    # pose
    roll: float
    scale: float
    yaw: float           # -1..1: horizontal squeeze and parallax of the inner features
    pitch: float         # -1..1: vertical parallax
    shift: np.ndarray    # (2,) translation
    # illumination
    light: np.ndarray    # (3,) direction (x right, y down, z towards the camera)
    light_strength: float
    ambient: float
    cast: np.ndarray     # (3,) per-channel gain
    brightness: float
    contrast: float
    # expression
    smile: float
    mouth_open: float
    eye_open: float
    brow_raise: float
    gaze: np.ndarray     # (2,) iris offset in units of the eye size
    # occlusion: kind 0 = none; the floats parameterise the occluder
    glasses: int         # 0 none, 1 clear frames, 2 sunglasses
    glasses_colour: np.ndarray
    hat: int             # 0 none, 1 cap, 2 beanie
    hat_colour: np.ndarray
    hat_depth: float
    hair_lock: float     # 0 none, else the lock's horizontal position (-1..1)
    blobs: np.ndarray    # (2, 7): u, v, half-width, half-height, r, g, b (half-width 0 = none)
    # background and clothing
    background: np.ndarray   # (2, 3) two colours of a vertical gradient
    clutter: np.ndarray      # (6, 8): kind, x, y, w, h, r, g, b in canvas fractions (w 0 = none)
    clothing: np.ndarray     # (3,)
    # camera
    blur: float          # Gaussian sigma in output (112-px) pixels
    noise: float         # Gaussian noise sigma on the 0..255 scale
    jpeg_quality: int
    landmark_jitter: np.ndarray  # (5, 2) detector error added to the landmarks used to align


APPEARANCE = 0.35  # per-photo drift of the identity vector, at nuisance 1 (identities: ~N(0, 1))


def sample_nuisance(rng, difficulty=DEFAULT_DIFFICULTY):
    """Draw one Nuisance from `rng` with a fixed number of draws (independent of the outcome)."""
    n = resolve_difficulty(difficulty).nuisance
    g = rng.standard_normal(16)
    u = rng.random(24)
    blob_raw = rng.random((2, 7))
    clutter_raw = rng.random((6, 8))
    colours = rng.random((4, 3))
    jitter = rng.standard_normal((5, 2))
    appearance = rng.standard_normal(NUM_Z).clip(-2.5, 2.5)

    elevation = math.pi / 2 - (0.35 + 0.6 * u[1]) * min(1.0, n)
    azimuth = 2 * math.pi * float(u[0])
    light = np.array([math.cos(azimuth) * math.cos(elevation),
                      math.sin(azimuth) * math.cos(elevation), math.sin(elevation)])
    blobs = np.zeros((2, 7))
    for i in range(2):
        if blob_raw[i, 0] < 0.12 * n:
            blobs[i] = [56 + 60 * (blob_raw[i, 1] - 0.5), 60 + 70 * (blob_raw[i, 2] - 0.5),
                        7 + 14 * blob_raw[i, 3], 6 + 14 * blob_raw[i, 4], *colours[i]]
    clutter = clutter_raw.copy()
    clutter[:, 3:5] = 0.1 + 0.45 * clutter[:, 3:5]
    clutter[clutter_raw[:, 0] > 0.8 * min(1.0, n), 3] = 0.0  # fewer shapes when easy, none at 0
    clutter[:, 0] = np.floor(clutter_raw[:, 0] * 1000) % 3  # kind: ellipse, rectangle, stripe
    # Muted scene colours: random colours pulled half-way towards their grey, and all the way
    # to a plain mid-grey scene at nuisance 0.
    muted = 0.5 * colours + 0.5 * colours.mean(axis=1, keepdims=True)
    muted = 0.5 + min(1.0, n) * (muted - 0.5)
    background = np.stack([muted[2], muted[2] * (1 + min(1.0, n) * (0.6 * u[2] - 0.4))]).clip(0, 1)
    clutter[:, 5:8] = 0.5 * clutter[:, 5:8] + 0.5 * clutter[:, 5:8].mean(axis=1, keepdims=True)
    glasses = 0 if u[3] >= 0.22 * n else (2 if u[4] < 0.3 else 1)
    hat = 0 if u[5] >= 0.1 * n else (1 if u[6] < 0.6 else 2)
    return Nuisance(
        appearance=APPEARANCE * n * appearance,
        roll=float(np.clip(0.14 * n * g[0], -0.35 * n, 0.35 * n)),
        scale=exp_libm(np.clip(0.06 * n * g[1], -0.12, 0.12)),
        yaw=float(np.clip(0.45 * n * g[2], -0.85, 0.85)),
        pitch=float(np.clip(0.3 * n * g[3], -0.6, 0.6)),
        shift=np.clip(2.5 * n * g[4:6], -6, 6),
        light=light, light_strength=float(0.55 * min(1.0, n) * u[7]),
        ambient=float(1.0 - 0.15 * min(1.0, n) * u[8]),
        cast=map_libm(math.exp, 0.08 * n * g[6:9].clip(-2.5, 2.5)),
        brightness=exp_libm(np.clip(0.18 * n * g[9], -0.5, 0.4)),
        contrast=exp_libm(np.clip(0.15 * n * g[10], -0.4, 0.3)),
        smile=float(np.clip(0.2 + 0.5 * n * g[11], -0.6, 1.2)),
        mouth_open=float(0.0 if u[9] > 0.3 * n else min(1.0, n) * u[10]),
        eye_open=float(np.clip(1.0 + 0.2 * n * g[12], 0.15, 1.3) if u[11] > 0.05 * n else 0.1),
        brow_raise=float(np.clip(0.5 * n * g[13], -1, 1)),
        gaze=np.clip(0.2 * n * g[14:16], -0.35, 0.35),
        glasses=glasses, glasses_colour=colours[3] * 0.5,
        hat=hat, hat_colour=colours[1], hat_depth=float(u[12]),
        hair_lock=float(0.0 if u[13] >= 0.1 * n else 2 * u[14] - 1 or 0.01),
        blobs=blobs, background=background, clutter=clutter, clothing=muted[0],
        blur=float(0.0 if u[15] > 0.5 * min(1.0, n) else 1.3 * n * u[16] ** 2),
        noise=float(6.0 * n * u[17]),
        jpeg_quality=int(round(95 - min(60.0, 40.0 * n) * u[18])),
        landmark_jitter=np.clip(0.9 * n * jitter, -3, 3),
    )
