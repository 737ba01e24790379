"""Read one run's ``_events.tsv`` into a normalised trials table.

The normalised table has one row per modelled trial and the columns

``onset, duration, kind, stim_file, imagined_file``

where ``kind`` is ``"train"``, ``"test"``, ``"imagery"``, ``"oneback"`` or the
(normalised) name of any other trial type, which the design models as nuisance.
Null trials (``Fix``) are the implicit baseline and are dropped. Column names and
trial-type names come from :class:`~bids_facedecode.config.EventSpec` and are matched
case- and whitespace-insensitively.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import EventSpec
from ..errors import DataError, NoInputError

TRAIN, TEST, IMAGERY, ONEBACK = "train", "test", "imagery", "oneback"


def _norm(value: object) -> str:
    return "".join(str(value).split()).lower()


def _find_column(frame: pd.DataFrame, wanted: str, path: Path, required: bool) -> str | None:
    lookup = {_norm(c): c for c in frame.columns}
    col = lookup.get(_norm(wanted))
    if col is None and required:
        raise DataError(
            f"{path}: no column '{wanted}' (columns: {', '.join(map(str, frame.columns))})"
        )
    return col


def read_events(path: str | Path, spec: EventSpec | None = None) -> pd.DataFrame:
    """Read and normalise one events file.

    Parameters
    ----------
    path : path-like
        A BIDS ``_events.tsv``.
    spec : EventSpec
        Column and trial-type names.

    Returns
    -------
    trials : DataFrame
        Columns ``onset, duration, kind, stim_file, imagined_file`` (strings ``""`` where absent),
        sorted by onset; null trials removed.
    """
    path = Path(path)
    spec = spec or EventSpec()
    if not path.is_file():
        raise NoInputError(f"{path}: events file not found")
    try:
        frame = pd.read_csv(path, sep="\t", na_values=["n/a", "N/A", "NaN", "nan", ""],
                            keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse events TSV ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    onset_col = _find_column(frame, "onset", path, True)
    dur_col = _find_column(frame, "duration", path, True)
    type_col = _find_column(frame, spec.trial_type_column, path, True)
    stim_col = _find_column(frame, spec.stim_column, path, True)
    oneback_col = _find_column(frame, spec.oneback_column, path, False)
    imag_col = _find_column(frame, spec.imagined_column, path, False)

    onset = pd.to_numeric(frame[onset_col], errors="coerce").to_numpy(float)
    duration = pd.to_numeric(frame[dur_col], errors="coerce").to_numpy(float)
    for name, values in (("onset", onset), ("duration", duration)):
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: {int(bad.sum())} non-numeric or missing '{name}' value(s), "
                f"first at row {row + 2} ({frame.iloc[row][onset_col if name == 'onset' else dur_col]!r})"
            )
    if (duration < 0).any():
        raise DataError(f"{path}: negative 'duration' at row {int(np.argmax(duration < 0)) + 2}")

    types = frame[type_col].fillna("").map(_norm)
    kinds = types.copy()
    names = {
        _norm(spec.train_type): TRAIN,
        _norm(spec.test_type): TEST,
        _norm(spec.imagery_type): IMAGERY,
    }
    kinds = types.map(lambda t: names.get(t, t))
    if oneback_col is not None:
        oneback = pd.to_numeric(frame[oneback_col], errors="coerce").fillna(0).to_numpy() > 0
        kinds = kinds.where(~oneback, ONEBACK)
    keep = (kinds != _norm(spec.null_type)) & (kinds != "")
    stim = frame[stim_col].fillna("").map(str.strip)
    imagined = (frame[imag_col].fillna("").map(str.strip) if imag_col is not None
                else pd.Series([""] * len(frame), index=frame.index))
    trials = pd.DataFrame({
        "onset": onset, "duration": duration, "kind": kinds,
        "stim_file": stim, "imagined_file": imagined,
    })[keep.to_numpy()]
    missing = trials["kind"].isin([TRAIN, TEST]) & (trials["stim_file"] == "")
    if missing.any():
        raise DataError(f"{path}: {int(missing.sum())} face trial(s) without '{spec.stim_column}'")
    return trials.sort_values("onset", kind="stable").reset_index(drop=True)
