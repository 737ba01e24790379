"""Group level: statistics across participants, read from the participant derivatives only."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .bidsio.derivatives import ensure_dataset_description, write_tsv
from .bidsio.results import read_metrics_table
from .config import Settings

LOG = logging.getLogger(__name__)


def against_chance(values: np.ndarray, chance: float) -> dict:
    """One-sided one-sample t-test (and Wilcoxon signed-rank) of ``values > chance``.

    Parameters
    ----------
    values : ndarray of shape (n_subjects,)
    chance : float

    Returns
    -------
    dict with ``n, mean, sd, sem, t, p_t, p_wilcoxon`` (NaN where undefined, e.g. n < 2).
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = v.size
    out = {"n": n, "mean": float(v.mean()) if n else np.nan,
           "sd": float(v.std(ddof=1)) if n > 1 else np.nan}
    out["sem"] = out["sd"] / np.sqrt(n) if n > 1 else np.nan
    out["t"], out["p_t"], out["p_wilcoxon"] = np.nan, np.nan, np.nan
    if n > 1 and out["sd"] > 0:
        res = stats.ttest_1samp(v, chance, alternative="greater")
        out["t"], out["p_t"] = float(res.statistic), float(res.pvalue)
    if n > 0 and np.any(v != chance):
        out["p_wilcoxon"] = float(stats.wilcoxon(v - chance, alternative="greater").pvalue)
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


def group_statistics(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across-participant tests per (space, metric) and paired space comparisons per metric.

    Parameters
    ----------
    table : DataFrame
        Tidy participant metrics (``subject, space, metric, value, chance``).

    Returns
    -------
    summary : DataFrame, one row per (space, metric)
    paired : DataFrame, one row per (metric, space_a, space_b)
    """
    rows = []
    for (space, metric), g in table.groupby(["space", "metric"], sort=True):
        chance = g["chance"].dropna()
        ch = float(chance.iloc[0]) if len(chance) else np.nan
        res = against_chance(g["value"].to_numpy(float), ch) if np.isfinite(ch) else \
            {"n": len(g), "mean": float(g["value"].mean()), "sd": np.nan, "sem": np.nan,
             "t": np.nan, "p_t": np.nan, "p_wilcoxon": np.nan}
        rows.append({"space": space, "metric": metric, **_labels(g), "chance": ch, **res})
    summary = pd.DataFrame(rows)
    paired = []
    spaces = sorted(table["space"].unique())
    for metric, g in table.groupby("metric", sort=True):
        wide = g.pivot_table(index="subject", columns="space", values="value", aggfunc="first")
        for i, sa in enumerate(spaces):
            for sb in spaces[i + 1:]:
                if sa in wide and sb in wide:
                    paired.append({"metric": metric, "space_a": sa, "space_b": sb, **_labels(g),
                                   **paired_comparison(wide[sa].to_numpy(), wide[sb].to_numpy())})
    return summary, pd.DataFrame(paired, columns=["metric", "space_a", "space_b", *LABELS, "n",
                                                  "mean_diff", "t", "p_t", "p_wilcoxon"])


LABELS = ("base_metric", "decoder", "roi", "selection")
_LABEL_DEFAULTS = {"decoder": "ols", "roi": "all", "selection": "ftest"}


def _labels(g: pd.DataFrame) -> dict:
    """The analysis labels of one metric key (base metric, decoder, region, voxel selection)."""
    out = {}
    for k in LABELS:
        if k in g and g[k].notna().any():
            out[k] = g[k].dropna().iloc[0]
        else:
            out[k] = g["metric"].iloc[0] if k == "base_metric" else _LABEL_DEFAULTS[k]
    return out


def tidy_statistics(table: pd.DataFrame, summary: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Every number of the group level in one long table (what ``group.html`` shows).

    One row per participant value (``level = participant``), per across-participant test
    against chance (``level = group``) and per paired space comparison (``level = paired``;
    ``space`` is ``space_a``, ``space_b`` the other, ``value`` the mean of ``a − b``).

    Returns
    -------
    DataFrame with columns ``level, subject, space, space_b, metric, base_metric, decoder, roi,
    selection, value, chance, n, sd, sem, statistic, test, p_value, p_wilcoxon``.
    """
    cols = ["level", "subject", "space", "space_b", "metric", *LABELS, "value", "chance", "n", "sd",
            "sem", "statistic", "test", "p_value", "p_wilcoxon"]
    part = table.assign(level="participant", space_b=None, sd=np.nan, sem=np.nan,
                        statistic=np.nan, p_wilcoxon=np.nan)
    for k in LABELS:
        if k not in part:
            part[k] = part["metric"] if k == "base_metric" else _LABEL_DEFAULTS[k]
    grp = summary.rename(columns={"mean": "value", "t": "statistic", "p_t": "p_value"}).assign(
        level="group", subject=None, space_b=None, test="one-sample t (greater than chance)")
    pair = paired.rename(columns={"space_a": "space", "mean_diff": "value", "t": "statistic",
                                  "p_t": "p_value"}).assign(
        level="paired", subject=None, chance=np.nan, sd=np.nan, sem=np.nan,
        test="paired t (two-sided)")
    frames = [f.reindex(columns=cols) for f in (part, grp, pair) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def run_group(settings: Settings) -> int:
    """Group level: read participant metrics, write tables, statistics and ``group.html``."""
    out = settings.output_dir
    if settings.reports_only:
        from .report.group_report import rebuild_group_report
        return rebuild_group_report(settings)
    table = read_metrics_table(out, settings.task)
    summary, paired = group_statistics(table)
    ensure_dataset_description(out, settings.bids_dir)
    prefix = out / "group" / f"group_task-{settings.task}"
    write_tsv(Path(f"{prefix}_metrics.tsv"), table)
    write_tsv(Path(f"{prefix}_stats.tsv"), summary)
    write_tsv(Path(f"{prefix}_paired.tsv"), paired)
    write_tsv(Path(f"{prefix}_statistics.tsv"), tidy_statistics(table, summary, paired))
    from .report.group_report import write_group_report

    # built from the files just written; a report failure is logged, never fatal
    write_group_report(out, settings.task, verbose=settings.verbosity > 1)
    for r in summary.itertuples():
        print(f"group {r.space} {r.metric.replace('_', ' ')}: mean {r.mean:.3f} "
              f"(chance {r.chance:.2f}, n={r.n}, p={r.p_t:.3g})")
    return 0
