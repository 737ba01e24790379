"""``group.html``: every participant side by side, group tests, paired space comparisons."""

from __future__ import annotations

import datetime as _dt
import os

import pandas as pd

from .. import __version__
from ..config import Settings
from . import figure_to_data_uri, render
from .figures import metric_strip_plot


def build_group_report(table: pd.DataFrame, summary: pd.DataFrame, paired: pd.DataFrame,
                       settings: Settings) -> str:
    """Render the group report to an HTML string."""
    metrics = list(dict.fromkeys(table["metric"]))
    figures = {m: figure_to_data_uri(metric_strip_plot(table, m)) for m in metrics}
    wide = table.pivot_table(index=["subject"], columns=["metric", "space"], values="value",
                             aggfunc="first")
    subjects = sorted(table["subject"].unique())
    links = {s: f"sub-{s}.html" for s in subjects if (settings.output_dir / f"sub-{s}.html").is_file()}
    return render(
        "group.html.j2",
        version=__version__, date=_dt.datetime.now().isoformat(timespec="seconds"),
        task=settings.task, subjects=subjects, links=links, metrics=metrics, figures=figures,
        summary=summary.to_dict("records"), paired=paired.to_dict("records"),
        wide=wide, spaces=sorted(table["space"].unique()), output_dir=os.fspath(settings.output_dir),
    )
