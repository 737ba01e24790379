"""Read the participant-level results back from an output folder (the group level's only input)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..errors import DataError, NoInputError

LOG = logging.getLogger(__name__)
METRICS_GLOB = "sub-*/sub-*_desc-*_metrics.json"


def find_metrics_files(output_dir: Path) -> list[Path]:
    """Every participant metrics file (``sub-<label>/sub-<label>_task-<t>_desc-<space>_metrics.json``)."""
    return sorted(p for p in Path(output_dir).glob(METRICS_GLOB) if not p.name.startswith("."))


def read_metrics_table(output_dir: Path, task: str | None = None) -> pd.DataFrame:
    """One tidy row per participant, latent space and metric.

    Returns
    -------
    table : DataFrame
        Columns ``subject, space, metric, value, chance, p_value, n, test, baseline, ceiling,
        alternative, base_metric, decoder, roi, selection`` (``metric`` is the unique key, e.g.
        ``pairwise_latent_wls_roi-occipital``; ``base_metric`` the metric without decoder and
        region; ``chance`` the exact mean of the participant's null, ``baseline`` the mean-face
        score of a reconstruction metric, ``ceiling`` the score of the test images' true latents,
        ``alternative`` the side of the test: ``greater``, or ``less`` for the mean rank).
    """
    files = find_metrics_files(output_dir)
    if not files:
        raise NoInputError(
            f"{output_dir}: no participant metrics (*_metrics.json); run the participant level first"
        )
    rows = []
    for path in files:
        try:
            doc = json.loads(path.read_text())
            if task and doc.get("task") != task:
                continue
            for name, m in doc["metrics"].items():
                rows.append({
                    "subject": doc["subject"], "space": doc["space"], "metric": name,
                    "value": m.get("value"), "chance": m.get("chance"), "p_value": m.get("p_value"),
                    "n": m.get("n"), "test": m.get("test"), "baseline": m.get("baseline"),
                    "ceiling": m.get("ceiling"), "alternative": m.get("alternative") or "greater",
                    "base_metric": m.get("metric", name), "decoder": m.get("decoder", "ols"),
                    "roi": m.get("roi", "all"), "selection": m.get("selection", "ftest"),
                })
        except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{path}: unreadable participant metrics ({exc})") from exc
    if not rows:
        raise NoInputError(f"{output_dir}: no participant metrics for task '{task}'")
    return pd.DataFrame(rows).sort_values(["metric", "space", "subject"], kind="stable").reset_index(drop=True)
