"""Statistics of a study's runs, as clinical accuracy tables report them (SciPy does the maths).

- ``describe``: n, mean ± SD, the 95 % confidence interval of the mean (Student t), median,
  95th percentile and maximum;
- ``proportion``: a share with its 95 % Wilson score interval (``scipy.stats.binomtest``);
- ``sensitivity``: which randomised factor moves an outcome: Spearman's rank correlation (with
  its p-value) of each factor with the outcome, and the standardised coefficients of a linear
  regression of the outcome on all factors at once (z-scored, so comparable across units), with
  that regression's R².

Non-finite values are dropped before computing (a run that failed has no value); an empty input
gives ``n = 0`` and None elsewhere, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def describe(values: Sequence[float] | np.ndarray) -> dict:
    """Summary of a sample: n, mean, sd (ddof 1), ci95 of the mean [lo, hi], median, p95, max."""
    a = _clean(values)
    n = int(a.size)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci95": [None, None], "median": None, "p95": None, "max": None}
    mean = float(a.mean())
    sd = float(a.std(ddof=1)) if n > 1 else 0.0
    if n > 1 and sd > 0:
        lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
    else:
        lo = hi = mean
    return {"n": n, "mean": mean, "sd": sd, "ci95": [float(lo), float(hi)], "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def proportion(k: int, n: int) -> dict:
    """``k`` of ``n`` as a share with its 95 % Wilson interval; ``n = 0`` gives None values."""
    if n <= 0:
        return {"k": int(k), "n": 0, "share": None, "ci95": [None, None]}
    if not 0 <= k <= n:
        raise ValueError(f"proportion: need 0 <= k <= n, got k={k}, n={n}")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return {"k": int(k), "n": int(n), "share": k / n, "ci95": [float(ci.low), float(ci.high)]}


def sensitivity(factors: Mapping[str, Sequence[float]], outcome: Sequence[float]) -> dict:
    """How much each factor explains ``outcome``: rows sorted by |Spearman rho|, plus R² of the linear fit.

    Each row: ``factor``, ``spearman_rho``, ``p_value``, ``std_coef`` (standardised regression
    coefficient: outcome SDs per factor SD, all factors together). Factors without spread, or
    with fewer than 3 complete runs, get None.
    """
    names = list(factors)
    X = np.column_stack([np.asarray(factors[k], dtype=np.float64) for k in names]) if names else np.zeros((0, 0))
    y = np.asarray(outcome, dtype=np.float64)
    ok = np.isfinite(y) & (np.isfinite(X).all(axis=1) if names else True)
    X, y = X[ok], y[ok]
    rows = []
    varying = [j for j in range(len(names)) if X.shape[0] >= 3 and np.ptp(X[:, j]) > 0]
    coef = {}
    r2 = None
    if varying and X.shape[0] > len(varying) + 1 and np.ptp(y) > 0:
        Z = (X[:, varying] - X[:, varying].mean(axis=0)) / X[:, varying].std(axis=0)
        zy = (y - y.mean()) / y.std()
        A = np.column_stack([Z, np.ones(len(zy))])
        beta, *_ = np.linalg.lstsq(A, zy, rcond=None)
        resid = zy - A @ beta
        r2 = float(1.0 - resid @ resid / (zy @ zy))
        coef = {varying[i]: float(beta[i]) for i in range(len(varying))}
    for j, name in enumerate(names):
        if j in varying and np.ptp(y) > 0:
            res = stats.spearmanr(X[:, j], y)
            rho, p = float(res.statistic), float(res.pvalue)
        else:
            rho = p = None
        rows.append({"factor": name, "spearman_rho": rho, "p_value": p, "std_coef": coef.get(j)})
    rows.sort(key=lambda r: -abs(r["spearman_rho"]) if r["spearman_rho"] is not None else 1.0)
    return {"n": int(y.size), "r2": r2, "rows": rows}
