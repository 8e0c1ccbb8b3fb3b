"""Who a synthetic person is: a seeded parameter vector fixing face geometry, colours and marks.

All geometry is in *template units*: the pixel coordinates of the 112x112 ArcFace crop
(docs/formats.md), so that an average identity's eyes, nose tip and mouth corners sit on the
ArcFace 5-point template. The renderer maps template units to canvas pixels per image.

`Difficulty.likeness` pulls every identity towards the average face: continuous parameters
shrink towards their mean by (1 - likeness) and categorical traits (hair style, beard, eye
colour, ...) take the most common value with probability `likeness`.
"""

import dataclasses
import math

import numpy as np

# Skin tones from light to dark (RGB in [0, 1]); an identity interpolates along this line.
SKIN_TONES = np.array([[0.96, 0.83, 0.74], [0.90, 0.72, 0.60], [0.78, 0.57, 0.43],
                       [0.58, 0.40, 0.29], [0.38, 0.25, 0.18]])
# Hair colours and how common they are; index 0 (near-black) is the "average" colour.
HAIR_COLOURS = np.array([[0.10, 0.08, 0.07], [0.25, 0.16, 0.10], [0.45, 0.30, 0.17],
                         [0.78, 0.64, 0.38], [0.58, 0.27, 0.12], [0.60, 0.60, 0.60],
                         [0.88, 0.87, 0.84]])
HAIR_WEIGHTS = np.array([0.30, 0.25, 0.17, 0.11, 0.07, 0.07, 0.03])
EYE_COLOURS = np.array([[0.33, 0.20, 0.11], [0.16, 0.10, 0.07], [0.28, 0.45, 0.68],
                        [0.30, 0.48, 0.30], [0.45, 0.50, 0.52], [0.52, 0.40, 0.18]])
EYE_WEIGHTS = np.array([0.35, 0.25, 0.15, 0.10, 0.08, 0.07])
# Hair styles: 0 short, 1 long, 2 fringe, 3 side part, 4 bald/shaved, 5 curly volume.
HAIR_STYLE_WEIGHTS = np.array([0.30, 0.22, 0.14, 0.14, 0.08, 0.12])
# Beards: 0 none, 1 stubble, 2 moustache, 3 full beard, 4 goatee.
BEARD_WEIGHTS = np.array([0.62, 0.12, 0.08, 0.12, 0.06])
MAX_MOLES = 4
NUM_Z = 40  # length of the identity vector behind the continuous parameters
# Standard deviation of unit Gaussian noise after the two smoothing passes in sample_identity
# (measured); a constant rather than .std() keeps the bytes free of reduction-order effects.
_SMOOTH_STD = 0.307
TEXTURE_CELLS = 20  # identity skin texture: a TEXTURE_CELLS^2 random field ...
TEXTURE_SIZE = 64   # ... upsampled once per identity, looked up per pixel by nearest neighbour


@dataclasses.dataclass(frozen=True)
class Difficulty:
    """How hard the dataset is.

    nuisance: multiplies the strength of every per-image nuisance (pose, light, expression,
      occlusion, clutter, blur, noise, JPEG); 0 gives frontal, clean, neutral images.
    likeness: in [0, 1): how alike identities are (0: spread over the whole parameter range;
      towards 1: every identity becomes the average face).
    """
    nuisance: float = 1.0
    likeness: float = 0.5

    def __post_init__(self):
        if not self.nuisance >= 0:
            raise ValueError(f"difficulty: nuisance must be >= 0, got {self.nuisance}")
        if not 0 <= self.likeness < 1:
            raise ValueError(f"difficulty: likeness must be in [0, 1), got {self.likeness}")


# Calibrated with `python -m examples.calibrate_synthetic` (numbers in the README): at
# "medium", raw pixels verify ~60% of test.bin pairs and Fisherfaces ~75%.
PRESETS = {
    "easy": Difficulty(nuisance=0.5, likeness=0.2),
    "medium": Difficulty(nuisance=1.0, likeness=0.5),
    "hard": Difficulty(nuisance=1.4, likeness=0.65),
}
DEFAULT_DIFFICULTY = "medium"


def resolve_difficulty(difficulty):
    """A Difficulty from a Difficulty, a preset name ('easy', 'medium', 'hard'), a
    'nuisance,likeness' string or a (nuisance, likeness) pair."""
    if isinstance(difficulty, Difficulty):
        return difficulty
    if isinstance(difficulty, str):
        if difficulty in PRESETS:
            return PRESETS[difficulty]
        try:
            nuisance, likeness = (float(x) for x in difficulty.split(","))
        except ValueError:
            raise ValueError(f"difficulty: expected one of {sorted(PRESETS)} or "
                             f"'NUISANCE,LIKENESS', got {difficulty!r}") from None
        return Difficulty(nuisance, likeness)
    if isinstance(difficulty, (tuple, list)) and len(difficulty) == 2:
        return Difficulty(float(difficulty[0]), float(difficulty[1]))
    raise ValueError(f"difficulty: expected a Difficulty, preset name or (nuisance, likeness), "
                     f"got {difficulty!r}")


@dataclasses.dataclass(frozen=True)
class Identity:
    """One person. Lengths are template units, angles radians, colours RGB in [0, 1]."""
    # head outline: centre, half-width, half-height, how much the jaw narrows
    face_cy: float
    face_a: float
    face_b: float
    jaw: float
    face_square: float  # 0 = ellipse, towards 1 = rounded rectangle
    # eyes
    eye_dx: float      # half the distance between the eye centres
    eye_y: float
    eye_a: float       # half-width and half-height of the open eye
    eye_b: float
    eye_tilt: float
    iris_r: float
    eye_colour: np.ndarray
    # brows
    brow_gap: float    # brow centre above the eye centre
    brow_len: float
    brow_thick: float
    brow_arch: float
    brow_tilt: float
    # nose
    nose_y: float
    nose_w: float
    nose_tip_r: float
    nose_shade: float
    # mouth
    mouth_y: float
    mouth_hw: float
    upper_lip: float
    lower_lip: float
    mouth_curve: float
    lip_colour: np.ndarray
    # ears, neck
    ear_y: float
    ear_b: float
    neck_w: float
    # colours
    skin: np.ndarray
    hair: np.ndarray
    # hair
    hair_style: int
    hairline: float    # fringe height above the eye line
    hair_volume: float
    hair_part: float   # -1..1, side of the parting
    # marks and texture
    beard: int
    beard_density: float
    moles: np.ndarray  # (MAX_MOLES, 4): u, v, radius, darkness (radius 0 = no mole)
    blush: float
    texture: np.ndarray  # (TEXTURE_SIZE, TEXTURE_SIZE) multiplicative skin pattern around 1
    # the draws the continuous parameters come from (see `vary`)
    z: np.ndarray = dataclasses.field(repr=False)
    colour_jitter: np.ndarray = dataclasses.field(repr=False)

    @property
    def landmarks(self):
        """The five landmarks of the neutral frontal face (template units)."""
        nose = [56.0, self.nose_y]
        return np.array([[56.0 - self.eye_dx, self.eye_y], [56.0 + self.eye_dx, self.eye_y], nose,
                         [56.0 - self.mouth_hw, self.mouth_y - self.mouth_curve * self.mouth_hw],
                         [56.0 + self.mouth_hw, self.mouth_y - self.mouth_curve * self.mouth_hw]])


def exp_libm(x):
    # libm's exp, not numpy's SIMD one: the result must not depend on the CPU's vector units.
    return math.exp(float(x))


def map_libm(fn, values):
    """fn (a `math` function) applied elementwise, for the same reason as exp_libm."""
    values = np.asarray(values, dtype=np.float64)
    return np.array([fn(float(v)) for v in values.ravel()]).reshape(values.shape)


def _upsample(field, size):
    """Bilinear resize of a square float field to (size, size), corners aligned."""
    n = field.shape[0]
    pos = np.arange(size) * ((n - 1) / (size - 1))
    i = np.minimum(pos.astype(int), n - 2)
    w = pos - i
    rows = field[i] * (1 - w)[:, None] + field[i + 1] * w[:, None]
    return rows[:, i] * (1 - w)[None, :] + rows[:, i + 1] * w[None, :]


def _categorical(rng, weights, likeness):
    """A category index: the most common one with probability `likeness`, else by weight."""
    u, pick = rng.random(), rng.choice(len(weights), p=weights / weights.sum())
    return int(np.argmax(weights)) if u < likeness else int(pick)


def _shape(z, colour_jitter):
    """The continuous parameters from the identity vector z (already scaled by the spread):
    the part of an Identity that `vary` moves from photo to photo."""
    tone = float(np.clip(0.35 + 0.3 * z[30], 0.0, 1.0)) * (len(SKIN_TONES) - 1)
    lo = int(min(tone, len(SKIN_TONES) - 2))
    skin = SKIN_TONES[lo] + (tone - lo) * (SKIN_TONES[lo + 1] - SKIN_TONES[lo])
    skin = np.clip(skin + colour_jitter[0] + np.array([0.02, 0.0, -0.02]) * z[31], 0, 1)
    lip = np.clip(skin * np.array([0.78, 0.48, 0.50]) + np.array([0.12, 0.0, 0.03])
                  + colour_jitter[3], 0, 1)
    return dict(
        face_cy=60.0 + 1.5 * z[0], face_a=37.0 * exp_libm(0.07 * z[1]),
        face_b=48.0 * exp_libm(0.06 * z[2]), jaw=float(np.clip(0.2 + 0.1 * z[3], 0.0, 0.45)),
        face_square=float(np.clip(0.35 + 0.3 * z[33], 0.0, 0.85)),
        eye_dx=17.6 * exp_libm(0.06 * z[4]), eye_y=51.6 + 2.0 * z[5],
        eye_a=6.6 * exp_libm(0.1 * z[6]), eye_b=3.3 * exp_libm(0.14 * z[7]), eye_tilt=0.08 * z[8],
        iris_r=3.0 * exp_libm(0.08 * z[9]),
        brow_gap=8.5 + 1.5 * z[10], brow_len=7.5 * exp_libm(0.12 * z[11]),
        brow_thick=1.6 * exp_libm(0.25 * z[12]), brow_arch=0.035 + 0.02 * z[13],
        brow_tilt=0.1 * z[14],
        nose_y=71.7 + 2.5 * z[15], nose_w=5.5 * exp_libm(0.12 * z[16]),
        nose_tip_r=3.4 * exp_libm(0.12 * z[17]), nose_shade=0.14 + 0.05 * z[18],
        mouth_y=92.3 + 2.2 * z[19], mouth_hw=14.6 * exp_libm(0.08 * z[20]),
        upper_lip=2.6 * exp_libm(0.2 * z[21]), lower_lip=3.4 * exp_libm(0.2 * z[22]),
        mouth_curve=0.04 * z[23], lip_colour=lip,
        ear_y=58.0 + 2.0 * z[24], ear_b=9.0 * exp_libm(0.1 * z[25]),
        neck_w=21.0 * exp_libm(0.08 * z[26]),
        skin=skin, hairline=22.0 + 3.0 * z[27],
        hair_volume=1.1 + 0.05 * z[28], hair_part=float(np.clip(z[29], -1, 1)),
        blush=float(np.clip(0.08 + 0.08 * z[32], 0, 0.3)),
    )


def vary(identity, offset):
    """The same person in another photo: the identity vector moved by `offset` (NUM_Z,) (weight,
    age, make-up, tan, hair: what a nuisance's `appearance` carries); categorical traits,
    colours of hair and eyes, marks and skin texture stay."""
    if not np.any(offset):
        return identity
    return dataclasses.replace(identity, **_shape(identity.z + offset, identity.colour_jitter))


def sample_identity(rng, difficulty=DEFAULT_DIFFICULTY):
    """Draw one Identity from `rng` (a numpy Generator). Uses a fixed number of draws in a fixed
    order, so identity k of a seed is the same whatever else is generated."""
    d = resolve_difficulty(difficulty)
    spread = 1.0 - d.likeness
    z = rng.standard_normal(NUM_Z).clip(-2.5, 2.5) * spread
    cats = rng.random(12)
    moles_raw = rng.random((MAX_MOLES, 4))
    texture_raw = rng.standard_normal((TEXTURE_CELLS, TEXTURE_CELLS))
    freckle_raw = rng.random((TEXTURE_CELLS, TEXTURE_CELLS))
    colour_jitter = rng.standard_normal((4, 3)) * 0.03 * spread
    sub = np.random.default_rng(rng.integers(2**63))  # categorical choices draw from here

    def cat(weights):
        return _categorical(sub, weights, d.likeness)

    hair_index = cat(HAIR_WEIGHTS)
    hair = np.clip(HAIR_COLOURS[hair_index] * (1 + 0.5 * colour_jitter[1]) + colour_jitter[1], 0, 1)
    eye_colour = np.clip(EYE_COLOURS[cat(EYE_WEIGHTS)] + colour_jitter[2], 0, 1)
    beard = cat(BEARD_WEIGHTS)
    # Moles: present with probability ~0.35 each, placed on the cheeks, forehead or chin.
    present = moles_raw[:, 0] < 0.35 * (1 - 0.5 * d.likeness)
    angle = moles_raw[:, 1] * 2 * np.pi
    radius = 0.35 + 0.55 * np.sqrt(moles_raw[:, 2])
    moles = np.stack([56 + 30 * radius * map_libm(math.cos, angle),
                      62 + 40 * radius * map_libm(math.sin, angle),
                      np.where(present, 0.9 + 1.1 * moles_raw[:, 3], 0.0),
                      0.35 + 0.35 * moles_raw[:, 3]], axis=1)
    # Skin texture: smooth blotches plus, for some identities, freckles.
    smooth = texture_raw
    for _ in range(2):  # cheap smoothing: average with the 4-neighbourhood
        smooth = (smooth + np.roll(smooth, 1, 0) + np.roll(smooth, -1, 0)
                  + np.roll(smooth, 1, 1) + np.roll(smooth, -1, 1)) / 5
    freckles = (cats[10] < 0.25 * spread) * (freckle_raw > 0.9) * 0.12
    texture = _upsample(1.0 + 0.035 * spread * smooth / _SMOOTH_STD - freckles, TEXTURE_SIZE)
    return Identity(
        **_shape(z, colour_jitter), eye_colour=eye_colour, hair=hair,
        hair_style=cat(HAIR_STYLE_WEIGHTS), beard=beard,
        beard_density=0.55 + 0.35 * cats[11], moles=moles, texture=texture.astype(np.float32),
        z=z, colour_jitter=colour_jitter,
    )
