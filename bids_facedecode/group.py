"""Group level: statistics across participants, read from the participant derivatives only."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .bidsio.derivatives import ensure_dataset_description, write_tsv
from .bidsio.outputs import group_table_path, read_metrics_table
from .config import Settings
from .encoding_group import run_encoding_group
from .group_stats import against_chance, paired_comparison

LOG = logging.getLogger(__name__)


def _mean(g: pd.DataFrame, column: str) -> float:
    v = pd.to_numeric(g[column], errors="coerce").dropna() if column in g else pd.Series(dtype=float)
    return float(v.mean()) if len(v) else np.nan


def group_statistics(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across-participant tests per (space, metric) and paired space comparisons per metric.

    Each participant's value is tested against its own chance level (``value − chance``,
    one-sided in the metric's ``alternative``). The paired comparison of two spaces compares
    the values above chance (``(a − chance_a) − (b − chance_b)``; the raw values for metrics
    without a chance level), since a metric's chance may differ between spaces.

    Parameters
    ----------
    table : DataFrame
        Tidy participant metrics (``subject, space, metric, value, chance`` and optionally
        ``alternative, baseline, ceiling``).

    Returns
    -------
    summary : DataFrame, one row per (space, metric), with the mean chance, baseline and ceiling
    paired : DataFrame, one row per (metric, space_a, space_b)
    """
    rows = []
    table = table.copy()
    for col in ("baseline", "ceiling"):
        if col not in table:
            table[col] = np.nan
    if "alternative" not in table:
        table["alternative"] = "greater"
    for (space, metric), g in table.groupby(["space", "metric"], sort=True):
        chance = pd.to_numeric(g["chance"], errors="coerce").to_numpy(float)
        alt = str(g["alternative"].dropna().iloc[0]) if g["alternative"].notna().any() else "greater"
        if np.isfinite(chance).any():
            res = against_chance(g["value"].to_numpy(float), chance, alt)
        else:
            res = {"n": len(g), "mean": float(g["value"].mean()), "sd": np.nan, "sem": np.nan,
                   "chance": np.nan, "t": np.nan, "p_t": np.nan, "p_wilcoxon": np.nan}
        rows.append({"space": space, "metric": metric, **_labels(g), "alternative": alt, **res,
                     "baseline": _mean(g, "baseline"), "ceiling": _mean(g, "ceiling")})
    summary = pd.DataFrame(rows)
    paired = []
    spaces = sorted(table["space"].unique())
    above = table["value"].astype(float) - pd.to_numeric(table["chance"], errors="coerce").fillna(0.0)
    for metric, g in table.assign(above=above).groupby("metric", sort=True):
        wide = g.pivot_table(index="subject", columns="space", values="above", aggfunc="first")
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
    selection, value, chance, baseline, ceiling, alternative, n, sd, sem, statistic, test, p_value,
    p_wilcoxon`` (at the group level ``chance``, ``baseline`` and ``ceiling`` are the means over
    participants).
    """
    cols = ["level", "subject", "space", "space_b", "metric", *LABELS, "value", "chance", "baseline",
            "ceiling", "alternative", "n", "sd", "sem", "statistic", "test", "p_value", "p_wilcoxon"]
    part = table.assign(level="participant", space_b=None, sd=np.nan, sem=np.nan,
                        statistic=np.nan, p_wilcoxon=np.nan)
    for k in LABELS:
        if k not in part:
            part[k] = part["metric"] if k == "base_metric" else _LABEL_DEFAULTS[k]
    grp = summary.rename(columns={"mean": "value", "t": "statistic", "p_t": "p_value"}).assign(
        level="group", subject=None, space_b=None)
    if len(grp):
        grp["test"] = np.where(grp["alternative"] == "less", "one-sample t of value − chance (less)",
                               "one-sample t of value − chance (greater)")
    pair = paired.rename(columns={"space_a": "space", "mean_diff": "value", "t": "statistic",
                                  "p_t": "p_value"}).assign(
        level="paired", subject=None, chance=np.nan, sd=np.nan, sem=np.nan,
        test="paired t of value − chance (two-sided)")
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
    for name, frame in (("metrics", table), ("stats", summary), ("paired", paired),
                        ("statistics", tidy_statistics(table, summary, paired))):
        write_tsv(group_table_path(out, settings.task, name), frame)
    run_encoding_group(out, settings.task)  # from the participants' encoding tables
    from .report.group_report import write_group_report

    # built from the files just written; a report failure is logged, never fatal
    write_group_report(out, settings.task, verbose=settings.verbosity > 1)
    for r in summary.itertuples():
        print(f"group {r.space} {r.metric.replace('_', ' ')}: mean {r.mean:.3f} "
              f"(chance {r.chance:.3g}, n={r.n}, p={r.p_t:.3g})")
    return 0
