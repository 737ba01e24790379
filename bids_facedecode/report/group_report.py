"""``group.html``, built from the group tables and the participants' derivatives on disk.

Every number comes from the files the group level wrote (``group/group_task-<task>_*.tsv``)
and the participants' metrics; the tables are shown with the columns the files hold.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..bidsio.outputs import group_report_path, group_tables
from . import SafeFigures, render
from .encoding import group_section
from .figures import (
    CHANCE_METRICS,
    DEFINITIONS,
    group_metric_figure,
    image_grid,
    metric_label,
    paired_figure,
)
from .inputs import GroupRecord, read_group_record, split_tiles

LOG = logging.getLogger(__name__)
P_COLUMNS = ("p_t", "p", "p_value", "pvalue")
THUMB_FACES = 10  # faces per participant in the side-by-side reconstructions


def _p_column(table: pd.DataFrame) -> str | None:
    return next((c for c in P_COLUMNS if c in table.columns), None)


def _ordered_metrics(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return [m for m in CHANCE_METRICS if m in names] + [m for m in names if m not in CHANCE_METRICS]


def _table_view(t: pd.DataFrame) -> dict:
    """A group TSV as the template shows it: its own columns, values untouched."""
    return {"columns": list(t.columns), "rows": t.to_dict("records")}


def _participants(rec: GroupRecord, metrics: list[str], spaces: list[str]) -> list[dict]:
    wide = rec.table.pivot_table(index="subject", columns=["metric", "space"], values="value",
                                 aggfunc="first")
    rows = []
    for sub in rec.subjects:
        cfg = rec.configs.get(sub, {})
        inputs = cfg.get("inputs", {})
        values = {}
        for m in metrics:
            for s in spaces:
                v = wide.loc[sub, (m, s)] if (m, s) in wide.columns else np.nan
                values[(m, s)] = None if pd.isna(v) else float(v)
        timings = cfg.get("timings_s", {})
        rows.append({"subject": sub, "link": rec.reports.get(sub), "values": values,
                     "n_runs": inputs.get("n_runs"), "n_volumes": inputs.get("n_volumes"),
                     "n_train": inputs.get("n_training_trials"), "n_test": inputs.get("n_test_images"),
                     "device": cfg.get("device_used"),
                     "time": float(sum(timings.values())) if timings else None})
    return rows


def _distributions(rec: GroupRecord, metrics: list[str], figs: SafeFigures) -> list[dict]:
    stats = rec.tables.get("stats")
    pcol = _p_column(stats) if stats is not None else None
    out = []
    for m in metrics:
        pv = None
        if stats is not None and pcol and {"metric", "space"} <= set(stats.columns):
            g = stats[stats["metric"] == m]
            pv = {str(s): float(p) for s, p in zip(g["space"], g[pcol], strict=True) if pd.notna(p)}
        uri = figs.add(f"group {m}", lambda m=m, pv=pv: group_metric_figure(rec.table, m, pv))
        out.append({"metric": m, "label": metric_label(m), "uri": uri})
    return out


def _paired(rec: GroupRecord, figs: SafeFigures) -> list[dict]:
    paired = rec.tables.get("paired")
    if paired is None or not {"metric", "space_a", "space_b"} <= set(paired.columns):
        return []
    pcol = _p_column(paired)
    out = []
    for r in paired.to_dict("records"):
        p = r.get(pcol) if pcol else None
        p = None if p is None or pd.isna(p) else float(p)
        uri = figs.add(f"paired {r['metric']}", lambda r=r, p=p: paired_figure(
            rec.table, r["metric"], str(r["space_a"]), str(r["space_b"]), p))
        out.append({"metric": r["metric"], "uri": uri})
    order = _ordered_metrics([o["metric"] for o in out])
    return sorted(out, key=lambda o: order.index(o["metric"]))


def _thumbnails(rec: GroupRecord, spaces: list[str], figs: SafeFigures) -> list[dict]:
    out = []
    for sub in rec.subjects:
        tiles = {d: split_tiles(*t) | {"_cols": t[1]["Columns"]} for d, t in rec.tiles.get(sub, {}).items()
                 if d in spaces}
        if not tiles:
            continue
        ref = max(tiles, key=lambda d: tiles[d]["shown"].shape[1])
        cols = tiles[ref]["_cols"][:THUMB_FACES]
        rows = [("shown", tiles[ref]["shown"][: len(cols)])]
        for s in spaces:
            if s in tiles:
                pos = {c: i for i, c in enumerate(tiles[s]["_cols"])}
                rows.append((s, np.stack([tiles[s]["reconstructed"][pos[c]] if c in pos else
                                          np.full_like(tiles[s]["reconstructed"][0], 0.5) for c in cols])))
        labels = [Path(c).stem for c in cols]
        uri = figs.add(f"sub-{sub} reconstructions", lambda rows=rows, labels=labels:
                       image_grid(rows, labels, THUMB_FACES))
        out.append({"subject": sub, "uri": uri, "n": len(tiles[ref]["_cols"]), "link": rec.reports.get(sub)})
    return out


def build_group_report(output_dir: Path, task: str) -> str:
    """Render ``group.html`` from the group tables and participant outputs in ``output_dir``.

    Returns
    -------
    str
        A self-contained HTML document.
    """
    rec = read_group_record(output_dir, task)
    figs = SafeFigures()
    metrics = _ordered_metrics(rec.table["metric"])
    spaces = list(dict.fromkeys(
        [s for cfg in rec.configs.values() for s in cfg.get("latent_spaces", [])]
        + sorted(rec.table["space"].unique())))
    spaces = [s for s in spaces if s in set(rec.table["space"])]
    generated = (rec.dataset_description.get("GeneratedBy") or [{}])[0]
    return render(
        "group.html.j2",
        task=task, version=__version__, date=_dt.datetime.now().isoformat(timespec="seconds"),
        output_dir=str(output_dir), pipeline_version=generated.get("Version", "n/a"),
        subjects=rec.subjects, metrics=metrics, spaces=spaces, labels={m: metric_label(m) for m in metrics},
        definitions={m: DEFINITIONS.get(m, "") for m in metrics},
        participants=_participants(rec, metrics, spaces),
        tables={k: _table_view(v) for k, v in rec.tables.items()},
        distributions=_distributions(rec, metrics, figs), paired=_paired(rec, figs),
        thumbnails=_thumbnails(rec, spaces, figs), incomplete=rec.incomplete,
        encoding=group_section(rec.output_dir, task, figs, rec.problems),
        problems=rec.problems + figs.problems,
    )


def write_group_report(output_dir: Path, task: str, *, verbose: bool = False) -> Path | None:
    """Build and atomically write ``output_dir/group.html``; never raises (a failure is logged
    and returns None, leaving the group tables untouched)."""
    from ..bidsio.derivatives import write_text

    try:
        return write_text(group_report_path(output_dir), build_group_report(output_dir, task))
    except Exception as exc:  # noqa: BLE001 - a report never fails or corrupts the analysis
        LOG.error("group report failed: %s: %s", type(exc).__name__, exc, exc_info=verbose)
        return None


def rebuild_group_report(settings) -> int:
    """``--reports-only`` at the group level: rebuild ``group.html`` from the files on disk."""
    from ..errors import EXIT_FAILURE, NoInputError

    if not group_tables(settings.output_dir, settings.task):
        raise NoInputError(f"{settings.output_dir / 'group'}: no group tables for task "
                           f"'{settings.task}'; run the group level first")
    path = write_group_report(settings.output_dir, settings.task, verbose=settings.verbosity > 1)
    if path is not None:
        print(f"group: {path}")
    return 0 if path is not None else EXIT_FAILURE
