"""Find the runs of one participant in a BIDS dataset (pybids), with their TR and events.

Two kinds of input are supported: raw BOLD (``sub-*/func/*_bold.nii.gz``) and fMRIPrep
derivatives (``*_space-<S>_desc-preproc_bold.nii.gz`` with ``desc-brain_mask`` and
``desc-confounds_timeseries.tsv``), found through a pybids layout that indexes the
derivatives beside the raw dataset. Events always come from the raw dataset.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, NoFilesSelectedError, NoInputError, UsageError
from .bold import read_header

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
    space: str | None = None

    @property
    def label(self) -> str:
        """Short human-readable name: ``ses-01 run-02``."""
        parts = [f"ses-{self.session}" if self.session else "", f"run-{self.run}" if self.run else ""]
        return " ".join(p for p in parts if p) or self.bold.name


def strip_prefix(label: str, prefix: str) -> str:
    """``"sub-01" -> "01"``; labels may be given with or without their entity prefix."""
    label = label.strip()
    return label[len(prefix) + 1:] if label.startswith(prefix + "-") else label


def index_dataset(bids_dir: Path, database_dir: Path | None = None, derivatives: Path | None = None):
    """Index a BIDS dataset with pybids (validation off; database reused when given).

    ``derivatives`` is an fMRIPrep (or fMRIPrep-shaped) derivatives folder indexed beside
    the raw dataset (query it with ``scope="derivatives"``).
    """
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    if not (bids_dir / "dataset_description.json").is_file():
        raise NoInputError(f"{bids_dir}: not a BIDS dataset (no dataset_description.json)")
    kwargs = {}
    if database_dir is not None:
        database_dir.mkdir(parents=True, exist_ok=True)
        kwargs["database_path"] = database_dir
    if derivatives is not None:
        check_derivatives_dir(derivatives)
        kwargs["derivatives"] = [str(derivatives)]
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=True)
    try:
        return BIDSLayout(str(bids_dir), validate=False, indexer=indexer, **kwargs)
    except Exception as exc:  # pybids raises a zoo of exception types on broken datasets
        where = derivatives if derivatives is not None and "deriv" in str(exc).lower() else bids_dir
        raise DataError(f"{where}: pybids cannot index the dataset ({exc})") from exc


def check_derivatives_dir(path: Path) -> None:
    """A ``--derivatives`` folder must be a BIDS derivatives dataset that names its pipeline."""
    desc = path / "dataset_description.json"
    if not path.is_dir():
        raise NoInputError(f"{path}: derivatives folder does not exist")
    if not desc.is_file():
        raise NoInputError(f"{desc}: not found; --derivatives must point at a BIDS derivatives "
                           "dataset such as fMRIPrep's output folder")
    try:
        doc = json.loads(desc.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{desc}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not (doc.get("GeneratedBy") or doc.get("PipelineDescription")):
        raise DataError(f"{desc}: no 'GeneratedBy' field; pybids needs it to index derivatives")


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
              filters: dict | None = None, space: str | None = None) -> list[RunInfo]:
    """All runs of ``task`` for ``subject``, sorted by session and run.

    With ``space`` (fMRIPrep derivatives indexed in ``layout``), the runs are the
    ``space-<space>_desc-preproc_bold`` images, each with its brain mask and confounds
    table; the events come from the raw dataset.

    Raises
    ------
    NoFilesSelectedError
        When no BOLD run matches.
    NoInputError, DataError
        For a missing events, mask or confounds file or a TR that disagrees with the NIfTI header.
    """
    root = Path(layout.root)
    query = {k: v for k, v in (filters or {}).items() if k != "scope"}
    query.update(subject=subject, task=task, suffix="bold", datatype="func",
                 extension=[".nii", ".nii.gz"])
    if sessions:
        avail = layout.get_sessions(subject=subject)
        query["session"] = resolve_labels(avail, sessions, "ses", root / f"sub-{subject}")
    if space is not None:
        files = layout.get(scope="derivatives", desc="preproc", space=space, **query)
    else:
        files = [f for f in layout.get(scope="raw", **query) if "desc" not in f.get_entities()]
    if not files:
        raise NoFilesSelectedError(_nothing_selected(layout, subject, task, filters, space))
    runs = []
    for f in files:
        bold = Path(f.path)
        ents = f.get_entities()
        events = _events_for(layout, f)
        meta = f.get_metadata()
        mask = confounds = None
        if space is not None:
            mask, confounds = _derivative_companions(layout, f, space)
            if "RepetitionTime" not in meta:  # fall back on the raw run's sidecar
                meta = {**_raw_metadata(layout, f), **meta}
        runs.append(_run_info(bold, events, meta, ents, mask=mask, confounds=confounds, space=space))
    runs.sort(key=lambda r: (r.session or "", _run_key(r.run), str(r.bold)))
    _check_one_image_per_run(files)
    _check_same_grid(runs)
    return runs


def _check_one_image_per_run(files) -> None:
    """Two images of one run (e.g. fMRIPrep ``res-1`` and ``res-2``) would be analysed twice."""
    seen: dict[tuple, Path] = {}
    for f in files:
        key = tuple(sorted((k, str(v)) for k, v in _entities_of_run(f).items()))
        if key in seen:
            raise UsageError(
                f"{f.path}: a second image of the run of {seen[key].name}; select one with "
                '--bids-filter-file (e.g. {"bold": {"res": "2"}}) or --space'
            )
        seen[key] = Path(f.path)


def _nothing_selected(layout, subject: str, task: str, filters: dict | None, space: str | None) -> str:
    root = Path(layout.root)
    where = root / f"sub-{subject}"
    extra = f" with filters {filters}" if filters else ""
    if space is None:
        tasks = layout.get_tasks(subject=subject)
        return (f"{where}: no BOLD runs for task '{task}'{extra} "
                f"(tasks present: {', '.join(tasks) or 'none'})")
    deriv = [Path(d.root) for d in layout.derivatives.values()] if hasattr(layout, "derivatives") else []
    where = (deriv[0] / f"sub-{subject}") if deriv else where
    present = layout.get(scope="derivatives", subject=subject, task=task, desc="preproc",
                         suffix="bold", return_type="id", target="space")
    return (f"{where}: no preprocessed BOLD (desc-preproc) for task '{task}' in space '{space}'{extra} "
            f"(spaces present: {', '.join(sorted(map(str, present))) or 'none'}; choose one with --space)")


def _entities_of_run(bold_file) -> dict:
    return {k: v for k, v in bold_file.get_entities().items()
            if k in ("subject", "session", "task", "run", "acquisition", "direction", "echo")}


def _raw_metadata(layout, bold_file) -> dict:
    hits = layout.get(scope="raw", suffix="bold", extension=[".nii", ".nii.gz"], **_entities_of_run(bold_file))
    hits = [h for h in hits if "desc" not in h.get_entities()]
    return hits[0].get_metadata() if hits else {}


def _derivative_companions(layout, bold_file, space: str) -> tuple[Path, Path]:
    """The brain mask (same space) and the confounds table of one preprocessed run."""
    ents = _entities_of_run(bold_file)
    bold = Path(bold_file.path)
    masks = layout.get(scope="derivatives", space=space, desc="brain", suffix="mask",
                       extension=[".nii", ".nii.gz"], **ents)
    same_grid = {k: bold_file.get_entities().get(k) for k in ("res", "den")}
    masks = [m for m in masks if Path(m.path).parent == bold.parent
             and all(m.get_entities().get(k) == v for k, v in same_grid.items())]
    if not masks:
        raise NoInputError(f"{bold}: no brain mask beside it (expected "
                           f"{bold.name.replace('desc-preproc_bold', 'desc-brain_mask')})")
    conf = []
    for suffix in ("timeseries", "regressors"):  # fMRIPrep >= 1.4 / older
        conf = layout.get(scope="derivatives", desc="confounds", suffix=suffix, extension=".tsv", **ents)
        conf = [c for c in conf if "space" not in c.get_entities() and Path(c.path).parent == bold.parent]
        if conf:
            break
    if not conf:
        stem = bold.name.split(f"_space-{space}")[0]
        raise NoInputError(f"{bold.parent / (stem + '_desc-confounds_timeseries.tsv')}: confounds table "
                           f"not found (needed for {bold.name})")
    return Path(masks[0].path), Path(conf[0].path)


def _run_key(run: str | None) -> tuple[int, str]:
    if run is None:
        return (0, "")
    return (int(run), run) if str(run).isdigit() else (0, str(run))


def _events_for(layout, bold_file) -> Path:
    """The raw dataset's ``_events.tsv`` of a run (also for a preprocessed derivative run)."""
    ents = {k: v for k, v in _entities_of_run(bold_file).items() if k != "echo"}
    bold = Path(bold_file.path)
    root = Path(layout.root)
    if root in bold.parents:  # a raw run (or derivatives stored inside the raw dataset)
        rel = bold.parent.relative_to(root)
        if "derivatives" not in rel.parts:
            expected = bold.parent / _events_name(bold.name)
            if not expected.is_file():
                raise NoInputError(f"{expected}: events file not found (needed for {bold.name})")
            return expected
    hits = [Path(h.path) for h in layout.get(scope="raw", suffix="events", extension=".tsv", **ents)]
    hits = [h for h in hits if "derivatives" not in h.relative_to(root).parts]
    if hits:
        return sorted(hits, key=lambda h: len(h.name))[0]
    sub = f"sub-{ents['subject']}"
    parts = [sub] + ([f"ses-{ents['session']}"] if ents.get("session") else [])
    stem = "_".join(p for p in [*parts, f"task-{ents['task']}",
                                f"run-{ents['run']}" if ents.get("run") is not None else ""] if p)
    expected = root.joinpath(*parts, "func", f"{stem}_events.tsv")
    raise NoInputError(f"{expected}: events file not found (needed for {bold.name})")


def _events_name(bold_name: str) -> str:
    for ext in (".nii.gz", ".nii"):
        if bold_name.endswith("_bold" + ext):
            return bold_name[: -len("_bold" + ext)] + "_events.tsv"
    return bold_name + "_events.tsv"


def _run_info(bold: Path, events: Path, meta: dict, ents: dict, mask: Path | None = None,
              confounds: Path | None = None, space: str | None = None) -> RunInfo:
    header = read_header(bold)
    shape = header.get_data_shape()
    if len(shape) != 4:
        raise DataError(f"{bold}: expected a 4D image, got shape {shape}")
    t_r = meta.get("RepetitionTime")
    zooms = header.get_zooms()
    header_tr = float(zooms[3]) if len(zooms) > 3 else 0.0
    units = header.get_xyzt_units()[1] if hasattr(header, "get_xyzt_units") else "sec"
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
        bold=bold, events=events, t_r=t_r, n_scans=int(shape[3]),
        shape=tuple(int(s) for s in shape[:3]),
        affine=tuple(tuple(float(x) for x in row) for row in np.round(header.get_best_affine(), 4)),
        mask=mask, confounds=confounds, space=space,
    )


def _check_same_grid(runs: list[RunInfo]) -> None:
    ref = runs[0]
    for r in runs[1:]:
        if r.shape != ref.shape or not np.allclose(r.affine, ref.affine, atol=1e-3):
            raise DataError(
                f"{r.bold}: voxel grid {r.shape} differs from {ref.bold.name} {ref.shape}; "
                "resample all runs to one grid (e.g. use fMRIPrep outputs with --derivatives)"
            )
