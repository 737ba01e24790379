"""Across-participant tests of the group level: a metric against each participant's chance, and
two paired sets of values (one-sample / paired t-tests with a Wilcoxon signed-rank check)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def against_chance(values: np.ndarray, chance, alternative: str = "greater") -> dict:
    """One-sided one-sample t-test (and Wilcoxon signed-rank) of ``values − chance``.

    Parameters
    ----------
    values : ndarray of shape (n_subjects,)
    chance : float or ndarray of shape (n_subjects,)
        Each participant's chance level (the exact mean of its own null: it differs between
        participants for imagery, whose null permutes only the imagined faces).
    alternative : ``"greater"`` (the default) or ``"less"`` (the mean rank: lower is better)

    Returns
    -------
    dict with ``n, mean, sd, sem, chance, t, p_t, p_wilcoxon`` (``chance`` the mean of the
    participants' chance levels; NaN where undefined, e.g. n < 2).
    """
    v = np.asarray(values, dtype=float)
    c = np.broadcast_to(np.asarray(chance, dtype=float), v.shape)
    ok = np.isfinite(v) & np.isfinite(c)
    v, c = v[ok], c[ok]
    d = v - c
    n = v.size
    out = {"n": n, "mean": float(v.mean()) if n else np.nan,
           "sd": float(v.std(ddof=1)) if n > 1 else np.nan,
           "chance": float(c.mean()) if n else np.nan}
    out["sem"] = out["sd"] / np.sqrt(n) if n > 1 else np.nan
    out["t"], out["p_t"], out["p_wilcoxon"] = np.nan, np.nan, np.nan
    if n > 1 and d.std(ddof=1) > 0:
        res = stats.ttest_1samp(d, 0.0, alternative=alternative)
        out["t"], out["p_t"] = float(res.statistic), float(res.pvalue)
    if n > 0 and np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d, alternative=alternative).pvalue)
    return out


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired comparison of two spaces over the same participants (``a - b``), two-sided.

    Returns ``n, mean_diff, t, p_t, p_wilcoxon``.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    out = {"n": int(d.size), "mean_diff": float(d.mean()) if d.size else np.nan,
           "t": np.nan, "p_t": np.nan, "p_wilcoxon": np.nan}
    if d.size > 1 and d.std(ddof=1) > 0:
        res = stats.ttest_rel(a[ok], b[ok])
        out["t"], out["p_t"] = float(res.statistic), float(res.pvalue)
    if d.size > 0 and np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    return out
