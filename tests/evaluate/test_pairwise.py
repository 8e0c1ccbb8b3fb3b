"""pairwise_verification against brute force: every pair's cosine in float64, then
tfmargin.evaluate.tar_at_far on the full list."""

import numpy as np
import pytest

from tfmargin.evaluate import tar_at_far
from tfmargin.evaluate import pairwise_verification


def brute_force(emb, labels, fars):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    i, j = np.triu_indices(len(e), k=1)
    scores = np.sum(e[i] * e[j], axis=1)
    genuine = labels[i] == labels[j]
    return tar_at_far(scores, genuine, fars), scores, genuine


def clustered(rng, identities, per, dim, spread):
    centers = rng.normal(size=(identities, dim))
    labels = np.repeat(np.arange(identities), per)
    return centers[labels] + spread * rng.normal(size=(len(labels), dim)), labels


@pytest.mark.parametrize("block_elements", [1 << 24, 5000, 1])
def test_matches_brute_force(rng, block_elements):
    emb, labels = clustered(rng, 60, 10, 16, 1.2)       # 600 images: 177,300 impostor pairs
    fars = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
    got = pairwise_verification(emb, labels, fars, block_elements=block_elements)
    want, scores, genuine = brute_force(emb, labels, fars)
    assert (got.genuine_pairs, got.impostor_pairs) == (int(genuine.sum()), int((~genuine).sum()))
    assert got.tar_at_far == pytest.approx(want, abs=1e-12)
    impostors = scores[~genuine]
    for far in fars:  # (the brute force sums in another order: allow for the last bit)
        t = got.thresholds[far]
        assert np.sum(impostors > t + 1e-12) <= got.false_accepts[far] <= np.sum(impostors > t - 1e-12)
        assert got.false_accepts[far] <= far * impostors.size
        assert got.far_achieved[far] == got.false_accepts[far] / impostors.size
    assert 0 < got.tar_at_far[1e-4] < got.tar_at_far[1e-1] <= 1


def test_ties_are_never_split(rng):
    # entries +-0.5 in 4-d: unit vectors whose cosines (-1, -0.5, 0, 0.5, 1) are exact in any
    # summation order, so most pairs tie with many others
    emb = rng.choice([-0.5, 0.5], size=(200, 4))
    labels = rng.integers(0, 20, 200)
    fars = (0.3, 0.1, 0.05, 0.01, 1e-3, 0.0, 1.0)
    got = pairwise_verification(emb, labels, fars, block_elements=777)
    want, _, _ = brute_force(emb, labels, fars)
    assert got.tar_at_far == pytest.approx(want, abs=1e-12)
    assert got.tar_at_far[1.0] == 1.0


def test_needs_genuine_and_impostor_pairs():
    with pytest.raises(ValueError, match="need two images of one identity and two identities"):
        pairwise_verification(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="FARs must be in"):
        pairwise_verification(np.eye(4), [0, 0, 1, 1], fars=(2.0,))


def test_far_rounding_follows_tar_at_far(rng):
    # two identities x 100 images: exactly 10,000 impostor pairs, where 3e-4 * 10,000 rounds
    # to 2.9999999999999996 but 3 false accepts are 3e-4 exactly
    emb, labels = clustered(rng, 2, 100, 8, 3.0)
    fars = (3e-4, 7e-4, 1e-3)
    got = pairwise_verification(emb, labels, fars)
    want, _, _ = brute_force(emb, labels, fars)
    assert got.impostor_pairs == 10_000
    assert got.tar_at_far == pytest.approx(want, abs=1e-12)
    assert got.false_accepts[3e-4] == 3  # continuous scores: no tie, all 3 allowed are used
