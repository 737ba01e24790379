"""fMRIPrep confounds of one run, chosen with nilearn's ``load_confounds`` strategies.

A strategy is either one of nilearn's presets (``simple``, ``scrubbing``, ``compcor``, as in
:func:`nilearn.interfaces.fmriprep.load_confounds_strategy`) or a list of noise components
(``motion``, ``wm_csf``, ``global_signal``, ``compcor``, ``high_pass``, ``scrub``,
``non_steady_state``) given to :func:`nilearn.interfaces.fmriprep.load_confounds` with its
default parameters, or ``none``. nilearn fills the undefined first rows of derivative
columns and demeans; volumes that nilearn censors (non-steady-state volumes, scrubbing) are
returned here as one spike regressor per censored volume, which in a least-squares GLM is
the same as removing those volumes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, UsageError

LOG = logging.getLogger(__name__)

PRESETS = ("simple", "scrubbing", "compcor")
COMPONENTS = ("motion", "wm_csf", "global_signal", "compcor", "high_pass", "scrub", "non_steady_state")
DEFAULT_STRATEGY = "simple"


def parse_strategy(text: str) -> tuple[str, ...]:
    """``"simple"`` -> ``("simple",)``; ``"motion+wm_csf"`` or ``"motion,wm_csf"`` -> components;
    ``"none"`` -> ``()``.

    Raises
    ------
    UsageError
        For an unknown preset or component (``ica_aroma`` and ``tedana`` need other input files
        and are not supported).
    """
    items = [t.strip().lower() for t in text.replace(",", "+").replace(" ", "+").split("+") if t.strip()]
    if items in ([], ["none"]):
        return ()
    if len(items) == 1 and items[0] in PRESETS:
        return (items[0],)
    unknown = [t for t in items if t not in COMPONENTS]
    if unknown:
        raise UsageError(
            f"--confounds {text}: unknown strategy {', '.join(unknown)}; use a preset "
            f"({', '.join(PRESETS)}), 'none', or components joined by '+' ({', '.join(COMPONENTS)})"
        )
    return tuple(dict.fromkeys(items))


def load_run_confounds(preproc_bold: Path, confounds_file: Path, strategy: tuple[str, ...],
                       n_scans: int) -> pd.DataFrame | None:
    """Confound regressors of one preprocessed run.

    Parameters
    ----------
    preproc_bold : Path
        The run's ``desc-preproc_bold`` image (nilearn finds its confounds from this name).
    confounds_file : Path
        The run's ``desc-confounds_timeseries.tsv`` (named in error messages).
    strategy : tuple of str
        From :func:`parse_strategy`; ``()`` means no confounds.
    n_scans : int
        Number of volumes of the run.

    Returns
    -------
    confounds : DataFrame of shape (n_scans, K) or None
        No NaN; censored volumes become columns ``censor_<volume>``.
    """
    if not strategy:
        return None
    from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "non_steady_state is always detected"
            if strategy[0] in PRESETS:
                frame, sample_mask = load_confounds_strategy(str(preproc_bold), denoise_strategy=strategy[0])
            else:
                frame, sample_mask = load_confounds(str(preproc_bold), strategy=strategy)
    except Exception as exc:  # nilearn raises ValueError/FileNotFoundError/KeyError on bad tables
        raise DataError(f"{confounds_file}: cannot load confounds with strategy "
                        f"{'+'.join(strategy)} ({type(exc).__name__}: {exc})") from exc
    frame = pd.DataFrame(index=range(n_scans)) if frame is None or frame.shape[1] == 0 else frame
    frame = frame.reset_index(drop=True)
    if len(frame) != n_scans:
        raise DataError(f"{confounds_file}: {len(frame)} rows but {preproc_bold.name} has {n_scans} volumes")
    values = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = frame.columns[~np.isfinite(values).all(axis=0)]
        raise DataError(f"{confounds_file}: NaN/inf left in column(s) {', '.join(map(str, bad))}")
    spikes = censor_regressors(sample_mask, n_scans)
    if spikes.shape[1]:
        LOG.info("%s: %d volume(s) censored (spike regressors)", preproc_bold.name, spikes.shape[1])
    out = pd.concat([frame, spikes], axis=1)
    return out if out.shape[1] else None


def censor_regressors(sample_mask: np.ndarray | None, n_scans: int) -> pd.DataFrame:
    """One-hot columns ``censor_<t>`` for every volume not in ``sample_mask`` (kept indices).

    Parameters
    ----------
    sample_mask : array of int or None
        Indices of the volumes kept (nilearn's convention); ``None`` keeps all.
    n_scans : int

    Returns
    -------
    DataFrame of shape (n_scans, n_censored)
    """
    if sample_mask is None:
        return pd.DataFrame(index=range(n_scans))
    keep = np.zeros(n_scans, bool)
    keep[np.asarray(sample_mask, dtype=int)] = True
    dropped = np.flatnonzero(~keep)
    cols = {f"censor_{t:04d}": (np.arange(n_scans) == t).astype(np.float64) for t in dropped}
    return pd.DataFrame(cols, index=range(n_scans))
