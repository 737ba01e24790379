"""Find the runs of one participant in a BIDS dataset (pybids), with their TR and events."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError, NoFilesSelectedError, NoInputError, UsageError

LOG = logging.getLogger(__name__)
TR_TOLERANCE = 1e-3


@dataclass(frozen=True)
class RunInfo:
    """One functional run of the analysed task."""

    subject: str
    session: str | None
    run: str | None
    bold: Path
    events: Path
    t_r: float
    n_scans: int
    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]
    mask: Path | None = None
    confounds: Path | None = None

    @property
    def label(self) -> str:
        """Short human-readable name: ``ses-01 run-02``."""
        parts = [f"ses-{self.session}" if self.session else "", f"run-{self.run}" if self.run else ""]
        return " ".join(p for p in parts if p) or self.bold.name


def strip_prefix(label: str, prefix: str) -> str:
    """``"sub-01" -> "01"``; labels may be given with or without their entity prefix."""
    label = label.strip()
    return label[len(prefix) + 1:] if label.startswith(prefix + "-") else label


def index_dataset(bids_dir: Path, database_dir: Path | None = None):
    """Index a BIDS dataset with pybids (validation off; database reused when given)."""
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    if not (bids_dir / "dataset_description.json").is_file():
        raise NoInputError(f"{bids_dir}: not a BIDS dataset (no dataset_description.json)")
    kwargs = {}
    if database_dir is not None:
        database_dir.mkdir(parents=True, exist_ok=True)
        kwargs["database_path"] = database_dir
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=True)
    try:
        return BIDSLayout(str(bids_dir), validate=False, indexer=indexer, **kwargs)
    except Exception as exc:  # pybids raises a zoo of exception types on broken datasets
        raise DataError(f"{bids_dir}: pybids cannot index the dataset ({exc})") from exc


def read_filter_file(path: Path | None) -> dict:
    """Read a ``--bids-filter-file`` (fMRIPrep convention: ``{"bold": {entity: value}}``)."""
    if path is None:
        return {}
    if not path.is_file():
        raise NoInputError(f"{path}: BIDS filter file not found")
    try:
        filters = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: BIDS filter file is not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError(f"{path}: BIDS filter file must map a query name ('bold') to entity filters")
    return filters.get("bold", {})


def resolve_labels(available: list[str], wanted: tuple[str, ...], entity: str, where: Path) -> list[str]:
    """Check user labels against what exists; no labels means all of them."""
    if not available:
        raise NoFilesSelectedError(f"{where}: no {entity} found")
    if not wanted:
        return sorted(available)
    labels = [strip_prefix(w, entity) for w in wanted]
    unknown = [w for w in labels if w not in available]
    if unknown:
        raise UsageError(
            f"{where}: unknown {entity} label(s) {', '.join(unknown)}; "
            f"available: {', '.join(sorted(available))}"
        )
    return labels


def find_runs(layout, subject: str, task: str, sessions: tuple[str, ...] = (),
              filters: dict | None = None) -> list[RunInfo]:
    """All runs of ``task`` for ``subject``, sorted by session and run.

    Raises
    ------
    NoFilesSelectedError
        When no BOLD run matches.
    NoInputError, DataError
        For a missing events file or a TR that disagrees with the NIfTI header.
    """
    root = Path(layout.root)
    query = dict(filters or {})
    query.update(subject=subject, task=task, suffix="bold", datatype="func",
                 extension=[".nii", ".nii.gz"])
    if sessions:
        avail = layout.get_sessions(subject=subject)
        query["session"] = resolve_labels(avail, sessions, "ses", root / f"sub-{subject}")
    files = layout.get(**query)
    if not files:
        tasks = layout.get_tasks(subject=subject)
        raise NoFilesSelectedError(
            f"{root / ('sub-' + subject)}: no BOLD runs for task '{task}'"
            + (f" with filters {filters}" if filters else "")
            + f" (tasks present: {', '.join(tasks) or 'none'})"
        )
    runs = []
    for f in files:
        bold = Path(f.path)
        ents = f.get_entities()
        events = _events_for(layout, f)
        meta = f.get_metadata()
        runs.append(_run_info(bold, events, meta, ents))
    runs.sort(key=lambda r: (r.session or "", _run_key(r.run), str(r.bold)))
    _check_same_grid(runs)
    return runs


def _run_key(run: str | None) -> tuple[int, str]:
    if run is None:
        return (0, "")
    return (int(run), run) if str(run).isdigit() else (0, str(run))


def _events_for(layout, bold_file) -> Path:
    ents = {k: v for k, v in bold_file.get_entities().items()
            if k in ("subject", "session", "task", "run", "acquisition", "direction")}
    hits = layout.get(suffix="events", extension=".tsv", **ents)
    hits = [h for h in hits if "_bold" not in h.filename]
    expected = Path(bold_file.path.replace("_bold.nii.gz", "_events.tsv").replace("_bold.nii", "_events.tsv"))
    for h in hits:
        if Path(h.path) == expected:
            return expected
    if not expected.is_file():
        raise NoInputError(f"{expected}: events file not found (needed for {Path(bold_file.path).name})")
    return expected


def _run_info(bold: Path, events: Path, meta: dict, ents: dict) -> RunInfo:
    try:
        img = nib.load(str(bold))
    except Exception as exc:
        raise DataError(f"{bold}: cannot read NIfTI header ({exc})") from exc
    if len(img.shape) != 4:
        raise DataError(f"{bold}: expected a 4D image, got shape {img.shape}")
    t_r = meta.get("RepetitionTime")
    zooms = img.header.get_zooms()
    header_tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    units = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
    if units == "msec":
        header_tr /= 1000.0
    elif units == "usec":
        header_tr /= 1e6
    if t_r is None:
        raise DataError(f"{bold}: no RepetitionTime in its JSON sidecar(s)")
    t_r = float(t_r)
    if t_r <= 0:
        raise DataError(f"{bold}: RepetitionTime must be positive, got {t_r}")
    if header_tr > 0 and abs(header_tr - t_r) > TR_TOLERANCE:
        raise DataError(
            f"{bold}: RepetitionTime {t_r:g} s in the sidecar disagrees with {header_tr:g} s in the NIfTI header"
        )
    return RunInfo(
        subject=ents["subject"], session=ents.get("session"),
        run=str(ents["run"]) if ents.get("run") is not None else None,
        bold=bold, events=events, t_r=t_r, n_scans=int(img.shape[3]),
        shape=tuple(int(s) for s in img.shape[:3]),
        affine=tuple(tuple(float(x) for x in row) for row in np.round(img.affine, 4)),
    )


def _check_same_grid(runs: list[RunInfo]) -> None:
    ref = runs[0]
    for r in runs[1:]:
        if r.shape != ref.shape or not np.allclose(r.affine, ref.affine, atol=1e-3):
            raise DataError(
                f"{r.bold}: voxel grid {r.shape} differs from {ref.bold.name} {ref.shape}; "
                "resample all runs to one grid (e.g. use fMRIPrep outputs with --derivatives)"
            )
