"""verification / tar_at_far against the float64 restatement of insightface
(tests/evaluate/reference.py)."""

import numpy as np
import pytest
from scipy import interpolate

from tests.evaluate import reference as ref
from tfmargin.evaluate import roc_curve, tar_at_far, verification
from tfmargin.evaluate.verification import (INSIGHTFACE_THRESHOLDS, INSIGHTFACE_VAL_THRESHOLDS,
                                            _interp_slinear, fold_ids)


def _pairs(rng, n, dim=16, noise=1.0, genuine_rate=0.5):
    """Genuine pairs share a base vector; impostors do not."""
    issame = rng.random(n) < genuine_rate
    a = rng.standard_normal((n, dim))
    b = np.where(issame[:, None], a + noise * rng.standard_normal((n, dim)),
                 rng.standard_normal((n, dim)))
    return ref.normalize(a), ref.normalize(b), issame


def _check_against_reference(e1, e2, issame, folds=10):
    result = verification(e1, e2, issame, folds=folds)
    acc, best = ref.calculate_roc(INSIGHTFACE_THRESHOLDS, e1, e2, issame, nrof_folds=folds)
    np.testing.assert_array_equal(result.fold_accuracies, acc)
    assert result.accuracy == np.mean(acc)
    assert result.accuracy_std == np.std(acc)
    np.testing.assert_array_equal(result.distance_thresholds, best)
    np.testing.assert_allclose(result.thresholds, 1 - best / 2)
    return result


@pytest.mark.parametrize("noise,n", [(0.6, 600), (1.2, 1003), (3.0, 257)])
def test_accuracy_equals_insightface_random(rng, noise, n):
    e1, e2, issame = _pairs(rng, n, noise=noise)
    result = _check_against_reference(e1, e2, issame)
    assert 0.5 < result.accuracy <= 1.0
    assert result.num_pairs == n and result.num_genuine == issame.sum()


def test_accuracy_equals_insightface_ties_on_the_grid():
    # Distances exactly 0, exactly 2.0 (a grid value: dist < 2.0 is False) and exactly 1.0:
    # many ties, and ties sitting on thresholds, where "<" versus "<=" matters.
    x = np.array([1.0, 0.0])
    y = np.array([0.0, 1.0])
    z = np.array([np.sqrt(0.5), np.sqrt(0.5)])  # |x - z|^2 = 2 - sqrt(2)
    rng = np.random.default_rng(7)
    kinds = rng.integers(0, 3, size=400)
    e1 = np.tile(x, (400, 1))
    e2 = np.stack([x, y, z])[kinds]
    issame = np.where(kinds == 0, True, np.where(kinds == 1, False, rng.random(400) < 0.5))
    _check_against_reference(e1, e2, issame)


def test_accuracy_equals_insightface_quantised_embeddings(rng):
    # Embeddings from a handful of vectors: the distance takes few values, heavily tied.
    atoms = ref.normalize(rng.standard_normal((6, 8)))
    i1, i2 = rng.integers(0, 6, size=(2, 500))
    issame = (i1 == i2) | (rng.random(500) < 0.1)
    _check_against_reference(atoms[i1], atoms[i2], issame)


def test_unbalanced_folds(rng):
    # 1003 pairs (fold sizes 101 x 3, 100 x 7) and sorted labels: the first folds are all
    # genuine, the last ones all impostor, so training folds are badly skewed.
    e1, e2, issame = _pairs(rng, 1003, noise=1.0)
    order = np.argsort(~issame, kind="stable")
    _check_against_reference(e1[order], e2[order], issame[order])
    np.testing.assert_array_equal(np.bincount(fold_ids(1003, 10)), [101] * 3 + [100] * 7)


@pytest.mark.parametrize("folds", [1, 2, 5])
def test_other_fold_counts(rng, folds):
    e1, e2, issame = _pairs(rng, 301, noise=1.0)
    _check_against_reference(e1, e2, issame, folds=folds)


def test_unnormalised_float32_inputs_are_normalised(rng):
    e1, e2, issame = _pairs(rng, 400, noise=1.0)
    scale = rng.uniform(0.5, 30.0, size=(400, 1))
    a = verification((e1 * scale).astype(np.float32), (e2 / scale).astype(np.float32), issame)
    e1n = ref.normalize(np.float32(e1 * scale))
    e2n = ref.normalize(np.float32(e2 / scale))
    acc, _ = ref.calculate_roc(INSIGHTFACE_THRESHOLDS, e1n, e2n, issame)
    assert a.accuracy == np.mean(acc)


def test_exact_thresholds_equal_reference_over_every_split(rng):
    e1, e2, issame = _pairs(rng, 300, noise=1.4)
    dist = np.sum((e1 - e2) ** 2, 1)
    u = np.unique(dist)
    candidates = np.r_[u[0], (u[:-1] + u[1:]) / 2, np.nextafter(u[-1], np.inf)]
    exact = verification(e1, e2, issame, thresholds="exact")
    acc, best = ref.calculate_roc(candidates, e1, e2, issame)
    np.testing.assert_array_equal(exact.fold_accuracies, acc)
    # (the candidates come from distances of re-normalised inputs: equal up to rounding)
    np.testing.assert_allclose(exact.distance_thresholds, best, rtol=1e-12)
    # A custom grid is honoured as given.
    grid = np.linspace(0.5, 3.5, 31)
    custom = verification(e1, e2, issame, thresholds=grid)
    acc, _ = ref.calculate_roc(grid, e1, e2, issame)
    np.testing.assert_array_equal(custom.fold_accuracies, acc)


@pytest.mark.parametrize("far", [1e-1, 1e-2, 1e-3])
def test_val_at_far_equals_insightface(rng, far):
    e1, e2, issame = _pairs(rng, 2000, noise=1.1)
    result = verification(e1, e2, issame, fars=(far,))
    expected = ref.calculate_val(INSIGHTFACE_VAL_THRESHOLDS, e1, e2, issame, far)
    assert result.val_at_far[far] == pytest.approx(expected, abs=0, rel=0)


def test_interp_matches_scipy_without_repeats_and_old_scipy_with_repeats(rng):
    x = np.sort(rng.random(50))
    x[0] = 0.0
    y = np.arange(50) * 0.001
    f = interpolate.interp1d(x, y, kind="slinear")
    for v in np.r_[rng.uniform(0, x[-1], 20), x[[0, 7, -1]]]:
        assert _interp_slinear(x, y, v) == pytest.approx(float(f(v)), rel=1e-15, abs=1e-18)
    xr = np.array([0.0, 0.0, 0.1, 0.1, 0.1, 0.25, 1.0, 1.0])
    yr = np.arange(8) * 0.5
    for v in (0.0, 0.05, 0.1, 0.2, 0.25, 0.7, 1.0):
        assert _interp_slinear(xr, yr, v) == ref.interp1d_slinear_old(xr, yr, v)
    # Between repeated runs it joins the last x <= v to the first x > v ...
    assert _interp_slinear(xr, yr, 0.05) == pytest.approx(0.5 + 0.5 * 0.5)
    # ... and at a repeated maximum the old spline code returned 0.
    assert _interp_slinear(xr, yr, 1.0) == 0.0


def test_tar_at_far_equals_brute_force(rng):
    scores = np.round(rng.standard_normal(3000), 2)  # rounded: many ties
    labels = rng.random(3000) < 0.3
    scores[labels] += 1.5
    fars = (0.5, 0.1, 0.01, 1e-3, 0.0)
    got = tar_at_far(scores, labels, fars)
    for far in fars:
        assert got[far] == ref.brute_tar_at_far(scores, labels, far), far
    # Default FARs: 1e-1 .. 1e-3, then 1e-4 only with >= 10,000 impostor pairs.
    assert list(tar_at_far(scores, labels)) == [1e-1, 1e-2, 1e-3]
    many = rng.standard_normal(12000)
    assert list(tar_at_far(many, np.r_[np.ones(1000), np.zeros(11000)])) == [
        1e-1, 1e-2, 1e-3, 1e-4]


def test_verification_tar_at_far_is_overall(rng):
    e1, e2, issame = _pairs(rng, 1500, noise=1.2)
    result = verification(e1, e2, issame)
    cos = np.sum(e1 * e2, 1)
    for far in (1e-1, 1e-2, 1e-3):
        assert result.tar_at_far[far] == ref.brute_tar_at_far(cos, issame, far)


def test_roc_curve_points(rng):
    scores = rng.integers(0, 20, 500).astype(float)
    labels = rng.random(500) < 0.4
    fpr, tpr, thr = roc_curve(scores, labels)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert thr[0] == np.inf
    for j in range(1, thr.size):
        accept = scores >= thr[j]
        assert fpr[j] == np.mean(accept[~labels]) and tpr[j] == np.mean(accept[labels])


def test_bad_inputs_have_clear_errors(rng):
    e1, e2, issame = _pairs(rng, 20)
    with pytest.raises(ValueError, match="same shape"):
        verification(e1, e2[:, :3], issame)
    with pytest.raises(ValueError, match="issame has 19"):
        verification(e1, e2, issame[:19])
    with pytest.raises(ValueError, match="cannot be split into 30 folds"):
        verification(e1, e2, issame, folds=30)
    bad = e1.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        verification(bad, e2, issame)
    with pytest.raises(ValueError, match="strictly increasing"):
        verification(e1, e2, issame, thresholds=[1.0, 0.5])
