"""t intervals and paired differences against published constants and numpy by hand."""

import math

import numpy as np
import pytest

from tfmargin.compare.stats import mean_ci, paired_difference, t_cdf, t_quantile

# two-sided 95 % critical values of Student's t (any statistics table, e.g. NIST/SEMATECH
# e-Handbook 1.3.6.7.2), and the normal's 1.959964 for large df
PUBLISHED = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 19: 2.093, 29: 2.045,
             100: 1.984}


@pytest.mark.parametrize("df,value", sorted(PUBLISHED.items()))
def test_t_quantile_matches_the_table(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)


def test_t_limits():
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-12)
    # df = 1 is the Cauchy distribution: P(T <= x) = 1/2 + atan(x)/pi
    for x in (-3.0, 0.3, 7.0):
        assert t_cdf(x, 1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-9)
    with pytest.raises(ValueError):
        t_quantile(0.2, 3)


def test_mean_ci_by_hand():
    v = [0.91, 0.93, 0.90, 0.94, 0.92]
    s = mean_ci(v)
    half = 2.776 * np.std(v, ddof=1) / math.sqrt(5)
    assert s["n"] == 5 and s["mean"] == pytest.approx(np.mean(v), abs=1e-15)
    assert (s["low"], s["high"]) == pytest.approx((np.mean(v) - half, np.mean(v) + half),
                                                  abs=2e-4 * half)
    assert mean_ci([0.5])["low"] is None and mean_ci([0.5])["mean"] == 0.5
    assert mean_ci([None, float("nan")])["n"] == 0


def test_paired_difference_uses_common_seeds():
    arm = {0: 0.80, 1: 0.85, 2: 0.90, 3: 0.70}
    control = {0: 0.78, 1: 0.80, 2: 0.88}
    d = paired_difference(arm, control)
    assert d["seeds"] == [0, 1, 2] and d["n"] == 3
    assert d["mean"] == pytest.approx(np.mean([0.02, 0.05, 0.02]))
    # pairing removes the shared seed effect: the difference's interval is narrower than the
    # spread of either arm
    assert d["high"] - d["low"] < mean_ci(list(arm.values())[:3])["high"] - mean_ci(
        list(arm.values())[:3])["low"]


def test_paired_difference_skips_non_finite_values():
    d = paired_difference({0: 0.5, 1: float("nan"), 2: 0.7, 10: 0.9},
                          {0: 0.4, 1: 0.5, 2: 0.6, 10: 0.8})
    assert d["seeds"] == [0, 2, 10] and d["n"] == 3
