"""Read what the reports show back from an output folder (never from the run in memory).

The participant report reads one participant's derivatives; the group report reads the group
tables and every participant's metrics. A file that is missing or unreadable is recorded in
``problems`` (shown in the report's errors section) instead of stopping the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..bidsio.derivatives import parse_bids_name
from ..bidsio.outputs import (
    ParticipantMetrics,
    ParticipantPaths,
    config_log_path,
    find_metrics_files,
    group_tables,
    output_subjects,
    participant_report_path,
    read_metrics,
    read_metrics_table,
)
from ..errors import DataError


@dataclass
class MapFile:
    """One statistical map or mask written by the participant level."""

    kind: str                 # "facevsfixation" | "F" | "selected" | "gender"
    space: str | None
    path: Path
    sidecar: dict


@dataclass
class ParticipantRecord:
    """Everything the participant report shows, as read from disk."""

    subject: str
    task: str
    output_dir: Path
    config: dict = field(default_factory=dict)
    metrics: dict[str, ParticipantMetrics] = field(default_factory=dict)  # space -> metrics
    decoding: dict[str, pd.DataFrame] = field(default_factory=dict)    # space -> decoding TSV
    maps: list[MapFile] = field(default_factory=list)
    brain_mask: Path | None = None
    design: pd.DataFrame | None = None
    design_sidecar: dict = field(default_factory=dict)
    tiles: dict[str, tuple[np.ndarray, dict]] = field(default_factory=dict)  # desc -> (sheet, sidecar)
    roi_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # file name -> table
    dataset_description: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def spaces(self) -> list[str]:
        return list(self.metrics)


def _read_json(path: Path, problems: list[str]) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        problems.append(f"{path}: missing")
    except (OSError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: unreadable ({exc})")
    return {}


def _read_tsv(path: Path, problems: list[str]) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                           dtype={"subject": str, "space": str, "metric": str})
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: unreadable ({exc})")
        return None


def _read_png(path: Path, problems: list[str]) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        problems.append(f"{path}: unreadable image ({exc})")
        return None


def read_participant_record(output_dir: Path, subject: str, task: str) -> ParticipantRecord:
    """Read one participant's derivatives (see :class:`ParticipantRecord`)."""
    out = Path(output_dir)
    rec = ParticipantRecord(subject, task, out)
    probs = rec.problems
    paths = ParticipantPaths(out, subject, task)
    root = paths.root
    rec.config = _read_json(paths.config_log, probs)
    rec.dataset_description = _read_json(out / "dataset_description.json", probs)
    for path in sorted(root.glob(f"sub-{subject}_*_metrics.json")):
        ents, _, _ = parse_bids_name(path.name)
        if ents.get("task") != task:
            continue
        try:
            doc = read_metrics(path)
        except DataError as exc:
            probs.append(str(exc))
            continue
        rec.metrics[doc.space] = doc
    if not rec.metrics:
        probs.append(f"{root}: no metrics file for task '{task}'")
    spaces = set(rec.metrics)
    for path in sorted((root / "func").glob("*")):
        if path.name.startswith("."):
            continue
        ents, suffix, ext = parse_bids_name(path.name)
        if ents.get("task") != task:
            continue
        desc = ents.get("desc", "")
        if ext == ".nii.gz":
            sidecar = _read_json(path.with_name(path.name.replace(".nii.gz", ".json")), probs)
            if suffix == "mask" and desc == "brain":
                rec.brain_mask = path
            elif suffix == "statmap" and desc == "facevsfixation":
                rec.maps.append(MapFile("facevsfixation", None, path, sidecar))
            elif suffix == "statmap" and desc in spaces and ents.get("stat") == "F":
                rec.maps.append(MapFile("F", desc, path, sidecar))
            elif suffix == "mask" and desc.endswith("selected") and desc[:-8] in spaces:
                rec.maps.append(MapFile("selected", desc[:-8], path, sidecar))
            elif suffix == "statmap" and desc.endswith("gender") and desc[:-6] in spaces:
                rec.maps.append(MapFile("gender", desc[:-6], path, sidecar))
        elif ext == ".tsv":
            if suffix == "decoding" and desc in spaces:
                table = _read_tsv(path, probs)
                if table is not None:
                    rec.decoding[desc] = table
            elif suffix == "design" and rec.design is None:
                rec.design = _read_tsv(path, probs)
                rec.design_sidecar = _read_json(path.with_suffix(".json"), probs)
            elif "roi" in ents or "roi" in suffix.lower() or "roi" in desc.lower():
                table = _read_tsv(path, probs)
                if table is not None:
                    rec.roi_tables[path.name] = table
    for path in sorted((root / "figures").glob(f"sub-{subject}_*_tiles.png")):
        ents, _, _ = parse_bids_name(path.name)
        if ents.get("task") != task:
            continue
        sheet = _read_png(path, probs)
        sidecar = _read_json(path.with_suffix(".json"), probs)
        if sheet is not None and sidecar:
            rec.tiles[ents.get("desc", "")] = (sheet, sidecar)
    for path in sorted(root.glob(f"sub-{subject}_*roi*.tsv")):  # per-ROI tables at the top level
        table = _read_tsv(path, probs)
        if table is not None:
            rec.roi_tables[path.name] = table
    return rec


def split_tiles(sheet: np.ndarray, sidecar: dict) -> dict[str, np.ndarray]:
    """Cut a tile sheet back into its rows: ``{row name: array (N, S, S, 3) float32 in [0, 1]}``."""
    s = int(sidecar["TileSize"])
    n = len(sidecar["Columns"])
    rows = {}
    for r, name in enumerate(sidecar["Rows"]):
        strip = sheet[r * s:(r + 1) * s, : n * s]
        rows[name] = (strip.reshape(s, n, s, 3).transpose(1, 0, 2, 3).astype(np.float32) / 255.0)
    return rows


@dataclass
class GroupRecord:
    """Everything the group report shows, as read from disk."""

    task: str
    output_dir: Path
    table: pd.DataFrame                                     # tidy: subject, space, metric, value, chance, ...
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)   # group TSV name -> table
    configs: dict[str, dict] = field(default_factory=dict)          # subject -> logs config
    tiles: dict[str, dict[str, tuple[np.ndarray, dict]]] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)           # subject -> relative link
    incomplete: list[str] = field(default_factory=list)             # sub-* folders without metrics
    dataset_description: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return sorted(self.table["subject"].astype(str).unique())


def read_group_record(output_dir: Path, task: str) -> GroupRecord:
    """Read the group tables and the participants' metrics, configs and image tiles."""
    out = Path(output_dir)
    table = read_metrics_table(out, task)
    table["subject"] = table["subject"].astype(str)
    rec = GroupRecord(task, out, table)
    for path in group_tables(out, task):
        t = _read_tsv(path, rec.problems)
        if t is not None:
            rec.tables[parse_bids_name(path.name)[1]] = t
    rec.dataset_description = _read_json(out / "dataset_description.json", rec.problems)
    with_metrics = {p.parent.name[4:] for p in find_metrics_files(out)}
    for sub in output_subjects(out):
        if sub not in with_metrics:
            rec.incomplete.append(sub)
            continue
        rec.configs[sub] = _read_json(config_log_path(out, sub), rec.problems)
        if participant_report_path(out, sub).is_file():
            rec.reports[sub] = participant_report_path(out, sub).name
        tiles = {}
        for path in sorted((out / f"sub-{sub}" / "figures").glob(f"sub-{sub}_task-{task}_*_tiles.png")):
            sheet = _read_png(path, rec.problems)
            sidecar = _read_json(path.with_suffix(".json"), rec.problems)
            if sheet is not None and sidecar:
                tiles[parse_bids_name(path.name)[0].get("desc", "")] = (sheet, sidecar)
        rec.tiles[sub] = tiles
    return rec
