"""Synthetic faces: identities, nuisances, the rasteriser, alignment and degradation."""

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from tfmargin.datasets.synthetic import (Difficulty, render, render_identity, resolve_difficulty,
                                     sample_nuisance)
from tfmargin.datasets.synthetic.generate import gaussian_blur, identity_for, image_rng


def test_difficulty_presets_strings_and_errors():
    assert resolve_difficulty("medium") == Difficulty()
    assert resolve_difficulty("1.5,0.25") == Difficulty(1.5, 0.25)
    assert resolve_difficulty((0.0, 0.0)) == Difficulty(0.0, 0.0)
    assert resolve_difficulty("hard").nuisance > resolve_difficulty("easy").nuisance
    with pytest.raises(ValueError, match="difficulty"):
        resolve_difficulty("impossible")
    with pytest.raises(ValueError, match="likeness"):
        Difficulty(1.0, 1.0)
    with pytest.raises(ValueError, match="nuisance"):
        Difficulty(-0.1, 0.2)


def test_identity_is_fixed_by_its_seed_and_likeness_pulls_identities_together():
    a = identity_for(3, 7, "medium")
    b = identity_for(3, 7, "medium")
    assert dataclasses.astuple(a).__repr__() == dataclasses.astuple(b).__repr__()
    assert identity_for(3, 8, "medium").face_a != a.face_a

    def spread(likeness):
        faces = [identity_for(0, i, Difficulty(1.0, likeness)) for i in range(200)]
        return np.std([f.eye_dx for f in faces]), np.std([f.mouth_y for f in faces])

    loose, tight = spread(0.0), spread(0.8)
    # continuous parameters shrink by (1 - likeness) around their mean
    np.testing.assert_allclose(np.array(tight) / np.array(loose), 0.2, rtol=0.15)


def _pixel(image, point):
    x, y = int(round(point[0])), int(round(point[1]))
    return image[y, x].astype(int)


def _darkest_near(image, point):
    x, y = int(round(point[0])), int(round(point[1]))
    return image[y - 1:y + 2, x - 1:x + 2].astype(int).max(axis=-1).min()


@pytest.mark.parametrize("roll,scale,shift", [(0.0, 1.0, (0.0, 0.0)), (0.3, 1.1, (3.0, -2.0)),
                                               (-0.25, 0.9, (-4.0, 5.0))])
def test_landmarks_sit_on_the_drawn_pupils_under_pose(roll, scale, shift):
    # Without nuisance the gaze is straight, so each eye landmark is the pupil centre: the
    # darkest part of the face. Roll, scale and shift move pupils and landmarks together.
    for index in range(4):
        identity = identity_for(0, index, Difficulty(1.0, 0.3))
        nuisance = sample_nuisance(image_rng(0, index, 0), Difficulty(0.0, 0.3))
        nuisance = dataclasses.replace(nuisance, roll=roll, scale=scale, shift=np.array(shift))
        image, landmarks = render(identity, nuisance, 256)
        for eye in landmarks[:2]:  # the pupil is within a pixel of the landmark
            assert _darkest_near(image, eye) < 30, (index, eye, _darkest_near(image, eye))
        cheek = landmarks[0] + 0.6 * (landmarks[3] - landmarks[0]) + np.array([-8.0, 0.0])
        assert _pixel(image, cheek).sum() > 3 * _pixel(image, landmarks[0]).sum()
        # eye distance follows the pose scale (frontal face, so no yaw squeeze)
        k = 256 / 150.0 * scale
        np.testing.assert_allclose(np.linalg.norm(landmarks[1] - landmarks[0]),
                                   2 * identity.eye_dx * k, rtol=1e-9)
        angle = math.atan2(*(landmarks[1] - landmarks[0])[::-1])
        np.testing.assert_allclose(angle, roll, atol=1e-9)


def test_gaussian_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(2).uniform(0, 255, (40, 50, 3)).astype(np.float32)
    for sigma in (0.6, 1.0, 1.8):
        radius = max(1, math.ceil(2.5 * sigma))
        reference = ndimage.gaussian_filter(image.astype(np.float64), (sigma, sigma, 0),
                                            mode="nearest", truncate=(radius + 0.25) / sigma)
        np.testing.assert_allclose(gaussian_blur(image, sigma), reference, atol=2e-3)
    assert gaussian_blur(image, 0.0) is image


def test_render_identity_is_deterministic_and_seed_dependent():
    def digest(seed):
        h = hashlib.sha256()
        for index in range(3):
            for jpeg in render_identity(seed, index, 3):
                h.update(jpeg)
        return h.hexdigest()

    first, second = digest(5), digest(5)
    assert first == second
    assert digest(6) != first


def test_images_are_aligned_rgb_jpegs_of_varied_quality():
    import tensorflow as tf

    encoded = render_identity(0, 1, 6)
    assert all(e[:3] == b"\xff\xd8\xff" for e in encoded)
    decoded = np.stack([tf.io.decode_jpeg(e).numpy() for e in encoded])
    assert decoded.shape == (6, 112, 112, 3)
    raw = render_identity(0, 1, 6, encode=False)
    # JPEG keeps the images close to what was rendered
    assert np.mean(np.abs(decoded.astype(float) - raw)) < 12


def _centred_grey(images):
    grey = images.astype(np.float64)[:, 16:96, 16:96] @ np.array([0.299, 0.587, 0.114])
    grey = grey.reshape(len(grey), -1)
    grey -= grey.mean(axis=1, keepdims=True)
    return grey / np.linalg.norm(grey, axis=1, keepdims=True)


def test_nuisance_strength_controls_how_alike_images_of_one_person_are():
    same_clean, same_default, different = [], [], []
    for index in range(5):
        clean = _centred_grey(render_identity(0, index, 3, Difficulty(0.0, 0.3), encode=False))
        noisy = _centred_grey(render_identity(0, index, 4, "medium", encode=False))
        other = _centred_grey(render_identity(0, index + 10, 4, "medium", encode=False))
        same_clean.append(clean[0] @ clean[1])
        same_default += [noisy[i] @ noisy[j] for i in range(4) for j in range(i + 1, 4)]
        different += [noisy[i] @ other[j] for i in range(4) for j in range(4)]
    assert min(same_clean) > 0.999          # no nuisance: the same picture every time
    assert max(same_default) < 0.99         # default: never near-duplicates ...
    assert np.mean(same_default) > np.mean(different) + 0.1  # ... yet clearly one person
