"""The paper's voxel selection: every voxel significant for faces and for the latent block.

VanRullen & Reddy (2019) decoded from every voxel that responded to the faces (the contrast
face vs fixation) **and** whose variance the latent regressors explained beyond the face
regressor (the F test of the latent block), both from the training data, however many voxels
that was (74,388 to 162,388 per subject). Here:

* face vs fixation is the one-sided t test of the ``face`` regressor (fixation trials are the
  implicit baseline), ``p = P(T_dof ≥ t)``;
* the latent block is the F test of ``z1..zD`` on ``(D, dof)`` degrees of freedom;
* each map is thresholded at its own level, on uncorrected p-values or as a false discovery
  rate (Benjamini–Hochberg over the analysed voxels, each map on its own); a voxel is kept
  when it passes both.

The p-values are those of the GLM's noise model (``--noise-model``): with the white-noise
model they are too small on autocorrelated fMRI noise, and the selection keeps too many voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .config import CORRECTIONS
from .errors import UsageError


def significant(p: np.ndarray, alpha: float, correction: str = "uncorrected") -> np.ndarray:
    """Which p-values pass ``alpha``: ``p ≤ alpha``, or a Benjamini–Hochberg FDR of ``alpha``.

    Parameters
    ----------
    p : ndarray of shape (V,)
        NaN (not estimated) never passes and does not count among the tests.
    alpha : float
        In (0, 1).
    correction : {"uncorrected", "fdr"}

    Returns
    -------
    ndarray of bool, shape (V,)
    """
    if correction not in CORRECTIONS:
        raise UsageError(f"correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise UsageError(f"significance level {alpha}: must be between 0 and 1")
    p = np.asarray(p, dtype=np.float64)
    ok = np.isfinite(p)
    out = np.zeros(p.shape, dtype=bool)
    if not ok.any():
        return out
    if correction == "uncorrected":
        out[ok] = p[ok] <= alpha
    else:
        out[ok] = stats.false_discovery_control(p[ok], method="bh") <= alpha
    return out


@dataclass(frozen=True)
class PaperSelection:
    """Voxels significant for face vs fixation and for the latent block.

    Attributes
    ----------
    face : ndarray of bool, shape (V,)
        Passing the face test.
    latent : ndarray of bool, shape (V,)
        Passing the latent-block test.
    alpha_face, alpha_latent : float
        Levels (p-value thresholds, or false discovery rates).
    correction : str
    face_t_threshold, latent_f_threshold : float
        The statistic each test's cut amounts to: the smallest t (F) that passes (``inf`` when
        none does; with FDR, the smallest passing statistic of these data).
    """

    face: np.ndarray
    latent: np.ndarray
    alpha_face: float
    alpha_latent: float
    correction: str
    face_t_threshold: float
    latent_f_threshold: float

    @property
    def both(self) -> np.ndarray:
        """Voxels passing both tests, bool (V,)."""
        return self.face & self.latent

    def describe(self) -> dict:
        """JSON-ready summary: levels, correction, the statistic thresholds and the counts."""
        def finite(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {
            "method": "paper", "correction": self.correction,
            "face_alpha": self.alpha_face, "latent_alpha": self.alpha_latent,
            "face_t_threshold": finite(self.face_t_threshold),
            "latent_f_threshold": finite(self.latent_f_threshold),
            "n_face": int(self.face.sum()), "n_latent": int(self.latent.sum()),
            "n_selected": int(self.both.sum()),
        }


def _cut(stat: np.ndarray, passing: np.ndarray, uncorrected: float, correction: str) -> float:
    if correction == "uncorrected":
        return float(uncorrected)
    return float(np.min(stat[passing])) if passing.any() else float("inf")


def paper_selection(face_t: np.ndarray, latent_f: np.ndarray, n_latent: int, dof: int,
                    alpha_face: float = 0.05, alpha_latent: float = 0.05,
                    correction: str = "uncorrected") -> PaperSelection:
    """The paper's selection from a face t map and a latent-block F map.

    Parameters
    ----------
    face_t : ndarray of shape (V,)
        t of the ``face`` regressor, on ``dof`` degrees of freedom.
    latent_f : ndarray of shape (V,)
        F of the latent block, on ``(n_latent, dof)`` degrees of freedom.
    n_latent : int
        ``D``.
    dof : int
        Residual degrees of freedom of the GLM.
    alpha_face, alpha_latent : float
    correction : {"uncorrected", "fdr"}

    Returns
    -------
    PaperSelection
    """
    face_t = np.asarray(face_t, dtype=np.float64)
    latent_f = np.asarray(latent_f, dtype=np.float64)
    p_face = stats.t.sf(face_t, dof)
    p_latent = stats.f.sf(latent_f, n_latent, dof)
    face = significant(p_face, alpha_face, correction)
    latent = significant(p_latent, alpha_latent, correction)
    return PaperSelection(
        face=face, latent=latent, alpha_face=float(alpha_face), alpha_latent=float(alpha_latent),
        correction=correction,
        face_t_threshold=_cut(face_t, face, stats.t.isf(alpha_face, dof), correction),
        latent_f_threshold=_cut(latent_f, latent, stats.f.isf(alpha_latent, n_latent, dof),
                                correction),
    )
