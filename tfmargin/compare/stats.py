"""Means with 95 % confidence intervals over seeds, and paired differences.

With 5 seeds the interval is Student's t, not mean +- 2 std: t(0.975, 4) = 2.776, so a
normal-theory interval would be 30 % too narrow. The quantile is computed here (the t
density integrated with Simpson's rule, inverted by bisection) rather than read from SciPy,
which tfmargin does not depend on; tests check it against the published table.

A paired difference subtracts, seed by seed, the control's number from the arm's: both were
trained on the same batches in the same order from the same initial weights, so seed-to-seed
noise common to both cancels and the interval of the difference is usually far narrower than
the two arms' own intervals suggest.
"""

import math

import numpy as np


def _t_density(x, df):
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))


def t_cdf(x, df, points=20001):
    """P(T <= x) for Student's t with `df` degrees of freedom (float64, |error| < 1e-9)."""
    if df <= 0:
        raise ValueError(f"t distribution: degrees of freedom must be > 0, got {df}")
    if x < 0:
        return 1.0 - t_cdf(-x, df, points)
    # the substitution x = tan(u) keeps the integrand smooth and the interval finite
    u = np.linspace(0.0, math.atan(x), points)
    f = _t_density(np.tan(u), df) / np.cos(u) ** 2
    h = u[1] - u[0] if points > 1 else 0.0
    simpson = h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    return 0.5 + simpson


def t_quantile(p, df):
    """The x with P(T <= x) = p, for 0.5 <= p < 1."""
    if not 0.5 <= p < 1:
        raise ValueError(f"t quantile: p must be in [0.5, 1), got {p}")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_ci(values, confidence=0.95):
    """{"n", "mean", "std", "low", "high"} of the finite values: the sample mean and its
    two-sided t interval (std with ddof=1); low/high are None below two values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    n = int(v.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "low": None, "high": None}
    mean = float(v.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "std": None, "low": None, "high": None}
    std = float(v.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half}


def paired_difference(arm, control, confidence=0.95):
    """mean_ci of arm[seed] - control[seed] over the seeds where both have a finite value
    ({seed: value} dicts), plus "seeds": those seeds."""
    def finite(v):
        return v is not None and math.isfinite(v)

    seeds = sorted(s for s in set(arm) & set(control) if finite(arm[s]) and finite(control[s]))
    out = mean_ci([arm[s] - control[s] for s in seeds], confidence)
    out["seeds"] = seeds
    return out
