"""Label tables a lab may give: stimulus gender (``stimuli.tsv``) and imagined faces per imagery trial."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, NoInputError
from .layout import RunInfo
from .stimuli import StimulusIndex, gender_from_name

STIMULUS_TABLE = "stimuli.tsv"
_MALE = {"m", "male", "1", "1.0", "man"}
_FEMALE = {"f", "female", "0", "0.0", "woman"}


def _columns(table: pd.DataFrame) -> dict[str, str]:
    return {re.sub(r"\s+", "", c).lower(): c for c in table.columns}


def read_gender_table(path: Path) -> dict[str, str]:
    """Gender per stimulus from a table with a ``gender`` column.

    The stimulus is named by ``sha1`` (content hash) or ``stim_file`` / ``name`` (file name;
    folders ignored). Values ``M/F``, ``male/female`` or ``1/0`` (case-insensitive).

    Returns
    -------
    dict
        Keys: content hashes and/or file names; values ``"M"`` or ``"F"``.
    """
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    cols = _columns(table)
    if "gender" not in cols:
        return {}
    keys = [cols[k] for k in ("sha1", "stim_file", "name", "stimulus") if k in cols]
    if not keys:
        raise DataError(f"{path}: a gender table needs a 'stim_file', 'name' or 'sha1' column")
    out: dict[str, str] = {}
    for _, row in table.iterrows():
        g = str(row[cols["gender"]]).strip().lower()
        label = "M" if g in _MALE else "F" if g in _FEMALE else None
        if label is None:
            continue
        for k in keys:
            v = str(row[k]).strip()
            if v:
                out[Path(v).name if k != cols.get("sha1") else v.lower()] = label
    return out


def stimulus_genders(index: StimulusIndex, shas: list[str], table: Path | None = None) -> np.ndarray:
    """``"M"``, ``"F"`` or ``"n/a"`` per stimulus: from the stimulus table when it has a
    ``gender`` column (default ``<stimuli_dir>/stimuli.tsv``), else from the file-name prefix.

    Parameters
    ----------
    index : StimulusIndex
    shas : list of str
        Content hashes.
    table : Path, optional

    Returns
    -------
    ndarray of str, shape (len(shas),)
    """
    path = Path(table) if table else Path(index.root) / STIMULUS_TABLE
    known = read_gender_table(path) if path.is_file() else {}
    out = []
    for s in shas:
        g = known.get(s.lower()) or known.get(index.name(s)) if known else None
        out.append(g or gender_from_name(index.name(s)) or "n/a")
    return np.array(out, dtype=object)


def read_imagery_labels(path: Path) -> pd.DataFrame:
    """Read a user table naming the imagined face of each imagery trial.

    Columns: ``imagined_stim_file`` (relative to the stimuli folder), ``onset`` (s), and
    the run as either ``events_file`` (file name of the run's ``_events.tsv``) or BIDS
    entities ``subject`` (or ``sub``, ``participant_id``), ``session`` (or ``ses``,
    ``session_id``; optional), ``run`` (or ``run_id``); labels with or without their
    ``sub-``/``ses-``/``run-`` prefix.

    Returns
    -------
    DataFrame with normalised columns ``events_file, sub, ses, run, onset, imagined_stim_file``.
    """
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"{path}: --imagery-labels table not found")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    cols = _columns(table)
    need = [c for c in ("imagined_stim_file", "onset") if c not in cols]
    if need:
        raise DataError(f"{path}: imagery labels need columns {need}; has {list(table.columns)}")
    out = pd.DataFrame({"imagined_stim_file": table[cols["imagined_stim_file"]].str.strip()})
    try:
        out["onset"] = table[cols["onset"]].astype(float)
    except ValueError:
        raise DataError(f"{path}: 'onset' must be numeric") from None
    if "events_file" in cols:
        out["events_file"] = table[cols["events_file"]].map(lambda v: Path(v.strip()).name)
    else:
        sub = next((cols[c] for c in ("subject", "sub", "participant_id", "participant")
                    if c in cols), None)
        run = next((cols[c] for c in ("run", "run_id") if c in cols), None)
        if sub is None or (run is None and len(table)):
            raise DataError(f"{path}: imagery labels need 'events_file' or 'subject' (or "
                            "'participant_id') and 'run' columns")
        out["events_file"] = ""
        out["sub"] = table[sub].map(lambda v: _entity_label(v, "sub"))
        ses = next((cols[c] for c in ("session", "ses", "session_id") if c in cols), None)
        out["ses"] = table[ses].map(lambda v: _entity_label(v, "ses")) if ses else ""
        out["run"] = table[run].map(lambda v: _entity_label(v, "run").lstrip("0"))
    return out


def _entity_label(value: str, entity: str) -> str:
    """A BIDS entity's label with or without its prefix: ``sub-01`` and ``01`` -> ``01``."""
    v = str(value).strip()
    return v[len(entity) + 1:] if v.lower().startswith(f"{entity}-") else v


def imagined_files_for_run(labels: pd.DataFrame, run: RunInfo, onsets: np.ndarray,
                           tolerance: float = 0.5) -> list[str]:
    """The imagined stimulus file of each imagery trial of one run ("" when not in the table).

    Parameters
    ----------
    labels : DataFrame from :func:`read_imagery_labels`
    run : RunInfo
    onsets : array of shape (M,)
        Onsets of the run's imagery trials.
    tolerance : float
        Largest onset difference (s) that still matches.
    """
    by_file = labels["events_file"] == Path(run.events).name
    if "sub" in labels:
        same = (labels["sub"] == run.subject) & \
            (labels["run"] == str(run.run or "").lstrip("0")) & \
            ((labels["ses"] == "") | (labels["ses"] == (run.session or "")))
        by_file = by_file | same
    rows = labels[by_file]
    out = []
    for t in np.asarray(onsets, dtype=float):
        near = rows[np.abs(rows["onset"].to_numpy() - t) <= tolerance]
        out.append(str(near["imagined_stim_file"].iloc[0]) if len(near) else "")
    return out
