"""Per-run design matrices of the participant GLM (the model of VanRullen & Reddy, 2019).

Each event is convolved once with nilearn's SPM canonical HRF, reproducing
``nilearn.glm.first_level.compute_regressor`` sample for sample (same oversampled grid,
same boxcar placement, same linear resampling), which gives ``E`` of shape
``(T, n_events)``. Every regressor is then a linear combination of the columns of ``E``:
the ``D`` latent regressors of a run are ``E_train @ Z_train`` — identical to nilearn's
amplitude-modulated regressors, without one convolution per latent dimension.

Columns shared by all runs come in a fixed order::

    z1..zD, face, test_<id>..., img_<key>..., <nuisance kinds>

(a column absent from a run is zeros). The run-specific columns (cosine drift, intercept,
confounds) are kept apart in :attr:`RunDesign.nuisance` so the GLM can project them out
run by run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from nilearn.glm.first_level import make_first_level_design_matrix, spm_hrf

from .errors import DataError, UsageError

TRIAL_COLUMNS = ("onset", "duration", "kind", "stim_id")
TRAIN, TEST, IMAGERY, NULL = "train", "test", "imagery", "null"
RESERVED_KINDS = (TRAIN, TEST, IMAGERY, NULL)
IMAGERY_MODES = ("identity", "trial")
FACE = "face"


@dataclass(frozen=True)
class RunDesign:
    """Design matrices of one run.

    Attributes
    ----------
    shared : ndarray of shape (T, P), float64
        Columns shared across runs, in the order of ``shared_names``.
    shared_names : list of str, length P
        ``z1..zD, face, test_<id>..., img_<key>..., <nuisance kinds>``.
    nuisance : ndarray of shape (T, K), float64
        Run-specific columns: cosine drifts, the intercept, confounds.
    nuisance_names : list of str, length K
    frame_times : ndarray of shape (T,)
    train_events : ndarray of shape (T, n_train), float64
        HRF response to each training trial of the run (amplitude 1), in row order.
    train_weights : ndarray of shape (n_train, D + 1), float64
        Each training trial's centred latent vector and a 1 (the ``face`` column), so that
        ``shared[:, :D + 1] == train_events @ train_weights``: the factor
        :func:`bids_facedecode.glm.accumulate_runs` uses to cut the arithmetic of ``XᵀY``.
    """

    shared: np.ndarray
    shared_names: list[str]
    nuisance: np.ndarray
    nuisance_names: list[str]
    frame_times: np.ndarray
    train_events: np.ndarray | None = None
    train_weights: np.ndarray | None = None

    @property
    def factor(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(train_events, train_weights)``, or None when the run has no factor."""
        if self.train_events is None or self.train_weights is None:
            return None
        return self.train_events, self.train_weights

    @property
    def n_latents(self) -> int:
        """Number of latent regressors ``D`` (the ``z`` block is columns ``0..D-1``)."""
        return self.shared_names.index(FACE)

    @property
    def face_index(self) -> int:
        """Column index of the ``face`` regressor (equals ``D``)."""
        return self.shared_names.index(FACE)


def _high_res_grid(frame_times: np.ndarray, oversampling: int, min_onset: float) -> np.ndarray:
    """nilearn's oversampled time grid (``_sample_condition``), shape (n_hr,)."""
    n = frame_times.size
    mini, maxi = float(np.min(frame_times)), float(np.max(frame_times))
    n_hr = (n - 1) * 1.0 / (maxi - mini)
    n_hr *= (maxi * (1 + 1.0 / (n - 1)) - mini - min_onset) * oversampling
    n_hr += 1
    return np.linspace(mini + min_onset, maxi * (1 + 1.0 / (n - 1)), np.rint(n_hr).astype(int))


def _check_frame_times(frame_times: np.ndarray) -> np.ndarray:
    ft = np.asarray(frame_times, dtype=np.float64)
    if ft.ndim != 1 or ft.size < 2:
        raise DataError(f"frame_times: expected a 1-D array of >= 2 times, got shape {ft.shape}")
    if not np.all(np.isfinite(ft)) or np.any(np.diff(ft) <= 0):
        raise DataError("frame_times: times must be finite and strictly increasing")
    return ft


def event_regressors(
    onsets: np.ndarray,
    durations: np.ndarray,
    frame_times: np.ndarray,
    oversampling: int = 50,
    min_onset: float = -24.0,
) -> np.ndarray:
    """Convolve each event (amplitude 1) with the SPM canonical HRF, sampled at frame times.

    Column ``e`` equals ``nilearn.glm.first_level.compute_regressor(([onsets[e]],
    [durations[e]], [1.0]), "spm", frame_times, oversampling=oversampling,
    min_onset=min_onset)`` to rounding error; a condition with amplitudes ``a`` is ``E @ a``.

    Parameters
    ----------
    onsets, durations : array of shape (n_events,)
        Seconds, in the time base of ``frame_times``; durations >= 0.
    frame_times : array of shape (T,)
        Acquisition times of the volumes (s), strictly increasing.
    oversampling : int
        Temporal oversampling of the convolution (nilearn's default 50).
    min_onset : float
        Events earlier than ``frame_times[0] + min_onset`` are clamped as in nilearn.

    Returns
    -------
    ndarray of shape (T, n_events), float64
    """
    ft = _check_frame_times(frame_times)
    onsets = np.asarray(onsets, dtype=np.float64).ravel()
    durations = np.asarray(durations, dtype=np.float64).ravel()
    if onsets.shape != durations.shape:
        raise DataError(f"events: {onsets.size} onsets but {durations.size} durations")
    if not (np.all(np.isfinite(onsets)) and np.all(np.isfinite(durations))):
        raise DataError("events: onsets and durations must be finite numbers")
    if np.any(durations < 0):
        raise DataError("events: durations must be >= 0")
    oversampling = int(oversampling)
    t_r = float(np.min(np.diff(ft)))
    grid = _high_res_grid(ft, oversampling, float(min_onset))
    tmax = grid.size

    # boxcar [a, b) on the high-resolution grid, placed exactly as nilearn places it
    a = np.minimum(np.searchsorted(grid, onsets), tmax - 1)
    b = np.minimum(np.searchsorted(grid, onsets + durations), tmax - 1)
    b = np.where((b < tmax - 1) & (b == a), b + 1, b)

    # boxcar * h at high-res sample t = Hc(t - a) - Hc(t - b), Hc = cumulative HRF
    h = spm_hrf(t_r, oversampling)
    cum = np.concatenate([[0.0], np.cumsum(h)])  # cum[k + 1] = sum(h[:k + 1])

    def _hc(k: np.ndarray) -> np.ndarray:
        return cum[np.clip(k, -1, h.size - 1) + 1]

    # linear resampling at frame times (scipy interp1d semantics)
    hi = np.clip(np.searchsorted(grid, ft, side="left"), 1, tmax - 1)
    lo = hi - 1
    y_lo = _hc(lo[:, None] - a[None, :]) - _hc(lo[:, None] - b[None, :])
    y_hi = _hc(hi[:, None] - a[None, :]) - _hc(hi[:, None] - b[None, :])
    slope = (y_hi - y_lo) / (grid[hi] - grid[lo])[:, None]
    return slope * (ft - grid[lo])[:, None] + y_lo


def drift_regressors(frame_times: np.ndarray, high_pass: float = 1.0 / 128) -> pd.DataFrame:
    """nilearn's cosine drift basis plus the intercept.

    Parameters
    ----------
    frame_times : array of shape (T,)
    high_pass : float
        Cut-off frequency in Hz.

    Returns
    -------
    DataFrame of shape (T, n_drift + 1), columns ``drift_1..drift_n, constant``.
    """
    if not high_pass > 0:
        raise UsageError(f"high_pass: must be positive, got {high_pass}")
    ft = _check_frame_times(frame_times)
    return make_first_level_design_matrix(
        ft, events=None, drift_model="cosine", high_pass=high_pass
    )


def imagery_keys(trials: pd.DataFrame, mode: str = "identity", run_label: str = "") -> list[str]:
    """Keys of the imagery regressors of a run's imagery trials, in row order.

    Parameters
    ----------
    trials : DataFrame with columns ``onset, duration, kind, stim_id``
    mode : {"identity", "trial"}
        ``"identity"``: one regressor per imagined identity (the trial's ``stim_id``; every
        imagery trial must carry one). ``"trial"``: one regressor per imagery trial, keyed
        ``<run_label>_img<k>`` (k = 1, 2, ... in onset order).
    run_label : str
        Unique label of the run (e.g. ``"ses-01_run-02"``); required when ``mode="trial"``.

    Returns
    -------
    list of str, one key per imagery row of ``trials`` (row order).
    """
    if mode not in IMAGERY_MODES:
        raise UsageError(f"imagery mode {mode!r}: expected one of {', '.join(IMAGERY_MODES)}")
    rows = trials[trials["kind"] == IMAGERY]
    if mode == "identity":
        ids = [_clean_id(s) for s in rows["stim_id"]]
        missing = [i for i, s in enumerate(ids) if not s]
        if missing:
            where = f" in run {run_label}" if run_label else ""
            raise DataError(
                f"{len(missing)} imagery trial(s){where} have no imagined identity; give the "
                "imagined_stim_file column or a table, or model imagery per trial"
            )
        return ids
    if not run_label:
        raise UsageError("imagery mode 'trial' needs a run_label to name per-trial regressors")
    order = np.argsort(rows["onset"].to_numpy(dtype=float), kind="stable")
    keys = [""] * len(rows)
    for k, i in enumerate(order, start=1):
        keys[i] = f"{run_label}_img{k}"
    return keys


def nuisance_kinds_of(trial_frames: Sequence[pd.DataFrame]) -> list[str]:
    """Sorted union of the nuisance trial kinds (not train/test/imagery/null) over runs."""
    kinds: set[str] = set()
    for trials in trial_frames:
        kinds.update(str(k) for k in trials["kind"].unique())
    return sorted(kinds.difference(RESERVED_KINDS))


def _clean_id(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _check_trials(trials: pd.DataFrame, where: str) -> pd.DataFrame:
    if not isinstance(trials, pd.DataFrame):
        raise DataError(f"{where}: trials must be a DataFrame")
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise DataError(f"{where}: trials lack column(s) {', '.join(missing)}")
    return trials.reset_index(drop=True)


def _as_confounds(confounds: pd.DataFrame | None, n_scans: int, where: str):
    if confounds is None:
        return np.zeros((n_scans, 0)), []
    if isinstance(confounds, pd.DataFrame):
        names = [str(c) for c in confounds.columns]
        values = confounds.to_numpy(dtype=np.float64)
    else:
        values = np.atleast_2d(np.asarray(confounds, dtype=np.float64))
        names = [f"confound{k}" for k in range(values.shape[1])]
    if values.ndim != 2 or values.shape[0] != n_scans:
        raise DataError(
            f"{where}: confounds have {values.shape[0]} rows but the run has {n_scans} volumes"
        )
    bad = [n for n, col in zip(names, values.T, strict=True) if not np.all(np.isfinite(col))]
    if bad:
        raise DataError(f"{where}: confound column(s) {', '.join(bad)} contain NaN/inf values")
    return values, names


def build_run_design(
    trials: pd.DataFrame,
    frame_times: np.ndarray,
    latents_centered: Mapping[str, np.ndarray],
    test_ids: Sequence[str],
    imagery_ids: Sequence[str] = (),
    nuisance_kinds: Sequence[str] = ("oneback",),
    confounds: pd.DataFrame | None = None,
    *,
    latent_dim: int | None = None,
    imagery_mode: str = "identity",
    run_label: str = "",
    high_pass: float = 1.0 / 128,
    oversampling: int = 50,
    min_onset: float = -24.0,
) -> RunDesign:
    """Build the design matrices of one run (columns in the order of the module docstring).

    Parameters
    ----------
    trials : DataFrame
        Columns ``onset, duration, kind, stim_id``. ``kind`` is ``train``, ``test``,
        ``imagery``, ``null`` (not modelled: the implicit baseline) or a nuisance kind.
        ``stim_id`` keys ``latents_centered`` for train rows, ``test_ids`` for test rows,
        the imagined identity for imagery rows (see :func:`imagery_keys`).
    frame_times : array of shape (T,)
        Volume acquisition times (s).
    latents_centered : mapping str -> array of shape (D,)
        Latent vector of each training stimulus, centred on the training mean.
    test_ids : sequence of str
        Test identities, in the column order shared by all runs.
    imagery_ids : sequence of str
        Imagery keys (identities or per-trial keys), in the shared column order.
    nuisance_kinds : sequence of str
        Other trial kinds modelled as nuisance, in the shared column order.
    confounds : DataFrame of shape (T, K) or None
        Run-specific confound regressors (e.g. fMRIPrep), no NaN.
    latent_dim : int, optional
        ``D``; inferred from ``latents_centered`` when omitted.
    imagery_mode : {"identity", "trial"}
    run_label : str
        Names the run in messages and per-trial imagery keys.
    high_pass : float
        Cosine drift cut-off (Hz).
    oversampling, min_onset
        As in nilearn's ``compute_regressor``.

    Returns
    -------
    RunDesign
    """
    where = f"run {run_label}" if run_label else "run"
    trials = _check_trials(trials, where)
    ft = _check_frame_times(frame_times)
    n_scans = ft.size
    kinds = trials["kind"].astype(str).to_numpy()
    stim = np.array([_clean_id(s) for s in trials["stim_id"]], dtype=object)

    unknown = sorted(set(kinds).difference(RESERVED_KINDS).difference(nuisance_kinds))
    if unknown:
        raise DataError(
            f"{where}: trial kind(s) {', '.join(map(repr, unknown))} are not among the modelled "
            f"nuisance kinds {list(nuisance_kinds)}"
        )

    if latent_dim is None:
        if not latents_centered:
            raise DataError("latents: no training latents given")
        latent_dim = int(np.asarray(next(iter(latents_centered.values()))).shape[-1])
    D = int(latent_dim)

    test_cols = [f"test_{t}" for t in test_ids]
    img_cols = [f"img_{k}" for k in imagery_ids]
    names = (
        [f"z{d}" for d in range(1, D + 1)] + [FACE] + test_cols + img_cols + list(nuisance_kinds)
    )
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{where}: duplicate regressor names {dup[:5]}")
    index = {n: i for i, n in enumerate(names)}

    modelled = kinds != NULL
    rows = np.flatnonzero(modelled)
    E = event_regressors(
        trials["onset"].to_numpy(dtype=float)[rows],
        trials["duration"].to_numpy(dtype=float)[rows],
        ft,
        oversampling=oversampling,
        min_onset=min_onset,
    )
    col_of_row = {int(r): e for e, r in enumerate(rows)}
    shared = np.zeros((n_scans, len(names)), dtype=np.float64)

    # training trials: face and the latent block
    train_rows = np.flatnonzero(kinds == TRAIN)
    E_train = np.zeros((n_scans, 0))
    weights = np.zeros((0, D + 1))
    if train_rows.size:
        missing = [s for s in stim[train_rows] if s not in latents_centered]
        if missing:
            raise DataError(
                f"{where}: {len(missing)} training stimulus/stimuli have no latent "
                f"(first: {missing[0]!r})"
            )
        Z = np.stack([np.asarray(latents_centered[s], dtype=np.float64) for s in stim[train_rows]])
        if Z.shape[1] != D:
            raise DataError(f"latents: dimension {Z.shape[1]} differs from latent_dim {D}")
        E_train = E[:, [col_of_row[int(r)] for r in train_rows]]
        weights = np.hstack([Z, np.ones((Z.shape[0], 1))])
        shared[:, : D + 1] = E_train @ weights

    def _add(row_indices: np.ndarray, keys: Sequence[str], prefix: str, known: Sequence[str]):
        for r, key in zip(row_indices, keys, strict=True):
            name = f"{prefix}{key}" if prefix else key
            if name not in index:
                raise DataError(
                    f"{where}: {prefix.rstrip('_') or 'trial'} key {key!r} is not among the "
                    f"{len(known)} shared identities"
                )
            shared[:, index[name]] += E[:, col_of_row[int(r)]]

    test_rows = np.flatnonzero(kinds == TEST)
    _add(test_rows, list(stim[test_rows]), "test_", test_ids)
    img_rows = np.flatnonzero(kinds == IMAGERY)
    if img_rows.size:
        keys = imagery_keys(trials, imagery_mode, run_label)
        _add(img_rows, keys, "img_", imagery_ids)
    for kind in nuisance_kinds:
        kr = np.flatnonzero(kinds == kind)
        _add(kr, [kind] * kr.size, "", nuisance_kinds)

    drift = drift_regressors(ft, high_pass)
    conf, conf_names = _as_confounds(confounds, n_scans, where)
    nuisance = np.hstack([drift.to_numpy(dtype=np.float64), conf])
    return RunDesign(
        shared=shared,
        shared_names=names,
        nuisance=nuisance,
        nuisance_names=list(drift.columns) + conf_names,
        frame_times=ft,
        train_events=E_train,
        train_weights=weights,
    )
