"""Study statistics against SciPy's own computations and known cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from machaon.trials.stats import describe, proportion, sensitivity


def test_describe_matches_student_t_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(1.5, 0.8, 200)
    d = describe(list(x) + [float("nan"), None])
    assert d["n"] == 200 and d["mean"] == pytest.approx(x.mean()) and d["sd"] == pytest.approx(x.std(ddof=1))
    lo, hi = sst.t.interval(0.95, 199, loc=x.mean(), scale=sst.sem(x))
    assert d["ci95"] == pytest.approx([lo, hi])
    assert describe([])["mean"] is None and describe([2.0])["ci95"] == [2.0, 2.0]


def test_wilson_interval_of_the_tirobot_grade_a_share():
    # Han et al. 2019: 95.3 % grade A of 1116 screws -> 1064 screws
    p = proportion(1064, 1116)
    assert p["share"] == pytest.approx(0.953, abs=5e-4)
    assert 0.938 < p["ci95"][0] < 0.953 < p["ci95"][1] < 0.966
    assert proportion(0, 0)["share"] is None
    with pytest.raises(ValueError):
        proportion(3, 2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=50))
def test_ci_contains_the_mean(xs):
    d = describe(xs)
    assert d["ci95"][0] <= d["mean"] + 1e-9 and d["mean"] <= d["ci95"][1] + 1e-9


def test_sensitivity_ranks_the_factor_that_drives_the_outcome():
    rng = np.random.default_rng(1)
    n = 300
    f = {"noise": rng.uniform(0, 1, n), "breathing": rng.uniform(0, 1, n), "const": np.ones(n)}
    y = 3.0 * f["noise"] + 0.3 * f["breathing"] + rng.normal(0, 0.2, n)
    s = sensitivity(f, y)
    assert [r["factor"] for r in s["rows"]][:2] == ["noise", "breathing"]
    top = s["rows"][0]
    assert top["spearman_rho"] > 0.9 and top["p_value"] < 1e-10 and top["std_coef"] > 0.9
    const = next(r for r in s["rows"] if r["factor"] == "const")
    assert const["spearman_rho"] is None and const["std_coef"] is None
    assert 0.9 < s["r2"] <= 1.0
