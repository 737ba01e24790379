"""The output contract: every derivative's path, the metrics record, the decoder file.

Whatever writes or reads the app's outputs (the participant writer, the rerun checks, the group
level, the reports, ``--decoder-from``) names its files here and reads the metrics and the
decoder through :func:`read_metrics` and :func:`load_decoder`, so a file's name and content are
defined once. Layout of ``output_dir``::

    sub-<l>/sub-<l>_task-<t>_desc-<space>_metrics.json     ParticipantMetrics (completeness key)
    sub-<l>/func/sub-<l>_task-<t>[_space-<S>]_desc-<d>[_stat-<s>]_<statmap|mask>.nii.gz (+ .json)
    sub-<l>/func/sub-<l>_task-<t>_desc-<space>_<decoding.tsv|decoding.mat|decoder.npz|analyses.tsv>
    sub-<l>/figures/sub-<l>_task-<t>_desc-<d>_<reconstructions|tiles>.png
    sub-<l>.html, logs/sub-<l>_config.json, logs/CITATION.md
    group/group_task-<t>_<metrics|stats|paired|statistics>.tsv, group.html
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .. import __version__
from ..errors import DataError, NoInputError
from .derivatives import bids_name, write_bytes, write_json

LOG = logging.getLogger(__name__)
METRICS_GLOB = "sub-*/sub-*_desc-*_metrics.json"


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParticipantPaths:
    """The names of one participant's outputs under ``output_dir`` (a final or a staging folder).

    ``space`` is the input's ``space-<S>`` entity (fMRIPrep derivatives), carried by the maps.
    """

    output_dir: Path
    subject: str
    task: str
    space: str | None = None

    @property
    def root(self) -> Path:
        return Path(self.output_dir) / f"sub-{self.subject}"

    @property
    def func(self) -> Path:
        return self.root / "func"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def ents(self) -> dict[str, str]:
        return {"sub": self.subject, "task": self.task}

    def func_file(self, suffix: str, ext: str, **ents: str | None) -> Path:
        """``func/sub-<l>_task-<t>[_<entities>]_<suffix><ext>`` (a table, a MATLAB file, ...)."""
        return self.func / bids_name({**self.ents, **ents}, suffix, ext)

    def map(self, suffix: str, **ents: str | None) -> Path:
        """A NIfTI map or mask in the input's space: ``func/..._space-<S>_desc-<d>_<suffix>.nii.gz``."""
        return self.func_file(suffix, ".nii.gz", space=self.space, **ents)

    def decoding_table(self, space: str) -> Path:
        return self.func_file("decoding", ".tsv", desc=space)

    def decoding_mat(self, space: str) -> Path:
        return self.func_file("decoding", ".mat", desc=space)

    def decoder(self, space: str) -> Path:
        return self.func_file("decoder", ".npz", desc=space)

    def analyses_table(self, desc: str) -> Path:
        """``desc-<space>`` every decoder and region; ``desc-<space>ridgecv`` the ridge CV."""
        return self.func_file("analyses", ".tsv", desc=desc)

    def design(self, session: str | None, run: str | None) -> Path:
        return self.func / bids_name({"sub": self.subject, "ses": session, "task": self.task,
                                      "run": run}, "design", ".tsv")

    def figure(self, desc: str, suffix: str) -> Path:
        """``figures/sub-<l>_task-<t>_desc-<d>_<suffix>.png`` (``reconstructions``, ``tiles``)."""
        return self.figures / bids_name({**self.ents, "desc": desc}, suffix, ".png")

    def metrics(self, space: str) -> Path:
        return metrics_path(self.output_dir, self.subject, self.task, space)

    @property
    def config_log(self) -> Path:
        return config_log_path(self.output_dir, self.subject)

    @property
    def report(self) -> Path:
        return participant_report_path(self.output_dir, self.subject)


def metrics_path(output_dir: Path, subject: str, task: str, space: str) -> Path:
    """``sub-<label>/sub-<label>_task-<task>_desc-<space>_metrics.json``."""
    return Path(output_dir) / f"sub-{subject}" / bids_name(
        {"sub": subject, "task": task, "desc": space}, "metrics", ".json")


def config_log_path(output_dir: Path, subject: str) -> Path:
    """``logs/sub-<label>_config.json``: settings, timings, provenance of the participant's run."""
    return Path(output_dir) / "logs" / f"sub-{subject}_config.json"


def citation_path(output_dir: Path) -> Path:
    """``logs/CITATION.md``, shared by every participant of ``output_dir``."""
    return Path(output_dir) / "logs" / "CITATION.md"


def participant_report_path(output_dir: Path, subject: str) -> Path:
    """``output_dir/sub-<label>.html``."""
    return Path(output_dir) / f"sub-{subject}.html"


def group_report_path(output_dir: Path) -> Path:
    """``output_dir/group.html``."""
    return Path(output_dir) / "group.html"


def group_table_path(output_dir: Path, task: str, name: str) -> Path:
    """``group/group_task-<task>_<name>.tsv`` (``metrics``, ``stats``, ``paired``, ``statistics``)."""
    return Path(output_dir) / "group" / f"group_task-{task}_{name}.tsv"


def group_tables(output_dir: Path, task: str) -> list[Path]:
    """The group tables present in ``output_dir`` for ``task``."""
    return sorted((Path(output_dir) / "group").glob(f"group_task-{task}_*.tsv"))


def find_metrics_files(output_dir: Path) -> list[Path]:
    """Every participant metrics file (``sub-<label>/sub-<label>_task-<t>_desc-<space>_metrics.json``)."""
    return sorted(p for p in Path(output_dir).glob(METRICS_GLOB) if not p.name.startswith("."))


def output_subjects(output_dir: Path) -> list[str]:
    """Labels of the participants with outputs (a ``sub-<label>`` folder) in ``output_dir``."""
    return sorted(p.name[4:] for p in Path(output_dir).glob("sub-*") if p.is_dir())


# ---------------------------------------------------------------------------------------------
# the metrics record
# ---------------------------------------------------------------------------------------------

@dataclass
class ParticipantMetrics:
    """``sub-<l>_task-<t>_desc-<space>_metrics.json``: one participant's results in one space.

    ``metrics`` maps a metric key (``pairwise_latent``, ``pairwise_latent_wls_roi-occipital``)
    to its record (``value, chance, p_value, n, test, baseline, ceiling, alternative, metric,
    decoder, roi, selection``; see :mod:`bids_facedecode.workflow.evaluation`). ``settings``
    holds the result settings of the run (``Settings.result_settings``; None in outputs that
    predate it).
    """

    subject: str
    space: str
    metrics: dict[str, dict]
    task: str | None = None
    version: str | None = None
    latent_dim: int | None = None
    n_voxels: int | None = None
    n_runs: int | None = None
    n_volumes: int | None = None
    n_training_trials: int | None = None
    n_test_images: int | None = None
    device: str | None = None
    seed: int | None = None
    decoder: str = "ols"
    decoders: list[str] = field(default_factory=list)
    voxel_selection: str = "ftest"
    selection_detail: dict = field(default_factory=dict)
    noise_model: str | None = None
    decoder_from: str | None = None
    settings: dict | None = None

    @classmethod
    def from_dict(cls, doc: dict) -> ParticipantMetrics:
        """From a parsed metrics JSON; unknown keys are ignored, missing optional ones default.

        Raises
        ------
        KeyError, TypeError
            Without ``subject``, ``space`` or a ``metrics`` mapping.
        """
        if not isinstance(doc, dict) or not isinstance(doc["metrics"], dict):
            raise TypeError("not a metrics record")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


def write_metrics(path: Path, record: ParticipantMetrics) -> Path:
    """Atomically write the metrics JSON (sorted keys, two-space indent, NaN as null)."""
    return write_json(path, asdict(record))


def read_metrics(path: Path) -> ParticipantMetrics:
    """Read a metrics JSON.

    Raises
    ------
    DataError
        Missing or unreadable file, or not a metrics record.
    """
    try:
        return ParticipantMetrics.from_dict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable participant metrics ({exc})") from exc


def metric_rows(record: ParticipantMetrics) -> list[dict]:
    """One tidy row per metric of ``record`` (the columns of :func:`read_metrics_table`)."""
    rows = []
    for name, m in record.metrics.items():
        rows.append({
            "subject": record.subject, "space": record.space, "metric": name,
            "value": m.get("value"), "chance": m.get("chance"), "p_value": m.get("p_value"),
            "n": m.get("n"), "test": m.get("test"), "baseline": m.get("baseline"),
            "ceiling": m.get("ceiling"), "alternative": m.get("alternative") or "greater",
            "base_metric": m.get("metric", name), "decoder": m.get("decoder", "ols"),
            "roi": m.get("roi", "all"), "selection": m.get("selection", "ftest"),
        })
    return rows


def read_metrics_table(output_dir: Path, task: str | None = None) -> pd.DataFrame:
    """One tidy row per participant, latent space and metric (the group level's only input).

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
        record = read_metrics(path)
        if task and record.task != task:
            continue
        try:
            rows += metric_rows(record)
        except (AttributeError, TypeError) as exc:
            raise DataError(f"{path}: unreadable participant metrics ({exc})") from exc
    if not rows:
        raise NoInputError(f"{output_dir}: no participant metrics for task '{task}'")
    return pd.DataFrame(rows).sort_values(["metric", "space", "subject"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# the decoder file
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SavedDecoder:
    """``sub-<l>_task-<t>_desc-<space>_decoder.npz``: a brain-to-latent map and its voxels."""

    path: Path | None
    space: str
    W: np.ndarray          # (D+1, n_sel), rows z1..zD, face
    selected: np.ndarray   # (n_sel,) indices into mask[mask]
    z_mean: np.ndarray     # (D,)
    mask: np.ndarray       # 3D bool
    affine: np.ndarray     # (4, 4)
    decoder: str = "ols"
    ridge: float = 0.0
    gender_axis: np.ndarray | None = None      # (D,) male − female, when the fit had labels
    gender_midpoint: np.ndarray | None = None  # (D,)

    @property
    def latent_dim(self) -> int:
        return int(self.W.shape[0] - 1)

    def mask_image(self) -> nib.Nifti1Image:
        """The saved analysis mask as a NIfTI image."""
        return nib.Nifti1Image(self.mask.astype(np.uint8), self.affine)


def save_decoder(path: Path, dec: SavedDecoder) -> Path:
    """Atomically write ``dec`` as a compressed ``.npz`` (``W`` and ``z_mean`` as float32; the
    gender axis and midpoint as empty arrays when the fit had no gender labels)."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf, W=dec.W.astype(np.float32), selected=dec.selected.astype(np.int64),
        z_mean=dec.z_mean.astype(np.float32), mask=dec.mask, affine=dec.affine,
        gender_axis=dec.gender_axis if dec.gender_axis is not None else np.zeros(0),
        gender_midpoint=dec.gender_midpoint if dec.gender_midpoint is not None else np.zeros(0),
        space=np.array(dec.space), version=np.array(__version__),
        decoder=np.array(dec.decoder), ridge=np.array(dec.ridge),
    )
    return write_bytes(path, buf.getvalue())


def load_decoder(path: Path) -> SavedDecoder:
    """Read a ``_decoder.npz`` written by the participant level.

    Raises
    ------
    NoInputError, DataError
        Missing file, or a file without the decoder's arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"{path}: --decoder-from file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise DataError(f"{path}: not a readable decoder file ({exc})") from exc
    missing = [k for k in ("W", "selected", "z_mean", "mask", "affine", "space") if k not in data]
    if missing:
        raise DataError(f"{path}: not a bids_facedecode decoder (missing {', '.join(missing)})")
    W = np.asarray(data["W"], np.float64)
    sel = np.asarray(data["selected"], np.int64)
    mask = np.asarray(data["mask"]).astype(bool)
    if W.ndim != 2 or W.shape[1] != sel.size or data["z_mean"].size != W.shape[0] - 1:
        raise DataError(f"{path}: inconsistent decoder arrays (W {W.shape}, {sel.size} voxels, "
                        f"z_mean {data['z_mean'].shape})")
    if mask.ndim != 3 or sel.size and (sel.min() < 0 or sel.max() >= mask.sum()):
        raise DataError(f"{path}: selected voxels do not index the saved mask")
    axis = midpoint = None
    D = W.shape[0] - 1
    if "gender_axis" in data and "gender_midpoint" in data and data["gender_axis"].size:
        axis = np.asarray(data["gender_axis"], np.float64).ravel()
        midpoint = np.asarray(data["gender_midpoint"], np.float64).ravel()
        if axis.size != D or midpoint.size != D:
            raise DataError(f"{path}: gender axis of {axis.size} dimensions for a decoder of D={D}")
    return SavedDecoder(path, str(data["space"]), W, sel, np.asarray(data["z_mean"], np.float64),
                        mask, np.asarray(data["affine"], np.float64),
                        str(data["decoder"]) if "decoder" in data else "ols",
                        float(data["ridge"]) if "ridge" in data else 0.0, axis, midpoint)
