"""Group statistics against closed forms and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bids_facedecode.group import against_chance, group_statistics, paired_comparison


def test_against_chance_closed_form():
    v = np.array([0.6, 0.7, 0.8, 0.9])
    res = against_chance(v, 0.5)
    sd = np.sqrt(((v - v.mean()) ** 2).sum() / 3)
    t = (v.mean() - 0.5) / (sd / 2)
    assert res["mean"] == pytest.approx(0.75)
    assert res["t"] == pytest.approx(t)
    # one-sided p from Student's t with 3 dof, closed form of its CDF:
    # F(t) = 1/2 + (1/pi) [ t/(sqrt(3)(1 + t^2/3)) + atan(t/sqrt(3)) ]
    u = t / np.sqrt(3)
    p = 0.5 - (u / (1 + u * u) + np.arctan(u)) / np.pi
    assert t == pytest.approx(3.8729833)
    assert res["p_t"] == pytest.approx(p, rel=1e-9)
    # Wilcoxon, all 4 differences positive: exact one-sided p = 1/16
    assert res["p_wilcoxon"] == pytest.approx(1 / 16)


def test_single_subject_has_no_test():
    res = against_chance(np.array([0.8]), 0.5)
    assert res["n"] == 1 and np.isnan(res["t"]) and np.isnan(res["sd"])


def test_paired_comparison_closed_form():
    a, b = np.array([0.9, 0.8, 0.85]), np.array([0.7, 0.75, 0.6])
    d = a - b
    res = paired_comparison(a, b)
    assert res["mean_diff"] == pytest.approx(d.mean())
    assert res["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(3)))


def test_group_statistics_table():
    table = pd.DataFrame({
        "subject": ["01", "02", "01", "02"], "space": ["pca", "pca", "vaegan", "vaegan"],
        "metric": ["pairwise_latent"] * 4, "value": [0.7, 0.8, 0.9, 0.95], "chance": [0.5] * 4,
    })
    summary, paired = group_statistics(table)
    assert set(summary["space"]) == {"pca", "vaegan"}
    assert summary.set_index("space").loc["vaegan", "mean"] == pytest.approx(0.925)
    assert paired.iloc[0]["space_a"] == "pca" and paired.iloc[0]["space_b"] == "vaegan"
    assert paired.iloc[0]["mean_diff"] == pytest.approx(-0.175)


def test_against_chance_uses_each_participants_chance():
    # values 0.6, 0.7, 0.5 against chances 0.55, 0.5, 0.45: d = 0.05, 0.2, 0.05, mean 0.1,
    # sd = sqrt((0.0025 + 0.01 + 0.0025) / 2) = sqrt(0.0075), t = 0.1 / (sd / sqrt 3) = 2
    res = against_chance(np.array([0.6, 0.7, 0.5]), np.array([0.55, 0.5, 0.45]))
    assert res["t"] == pytest.approx(2.0)
    assert res["p_t"] == pytest.approx(stats.t.sf(2.0, 2))
    assert res["chance"] == pytest.approx(0.5) and res["mean"] == pytest.approx(0.6)
    # against a flat 0.5 the same values give t = 0.1 / (0.1 / sqrt 3) = sqrt 3
    assert against_chance(np.array([0.6, 0.7, 0.5]), 0.5)["t"] == pytest.approx(np.sqrt(3))
    # the mean rank: lower is better
    low = against_chance(np.array([3.0, 4.0, 5.0]), 10.5, alternative="less")
    assert low["t"] < 0 and low["p_t"] == pytest.approx(stats.t.cdf(low["t"], 2))
