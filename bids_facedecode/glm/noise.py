"""Serial correlation of fMRI noise: a pooled AR(1) coefficient per run and its whitening filter.

fMRI residuals are autocorrelated; a GLM with a white-noise model then under-estimates the
variance of its effects and its t and F statistics are not calibrated. The participant GLM
models each run's noise as a stationary AR(1) process ``e_t = ρ e_{t-1} + u_t`` and fits the
model prewhitened by the exact (Prais–Winsten) filter of that process::

    (W a)_0 = sqrt(1 - ρ²) a_0,    (W a)_t = a_t - ρ a_{t-1}   (t >= 1)

``WᵀW`` is the inverse of the AR(1) correlation matrix, so the whitened least-squares fit is the
generalised least-squares fit (:func:`ar1_correlation`). Design, data and nuisance are all
whitened with the run's filter; the whitened nuisance is then projected out
(Frisch–Waugh–Lovell on the whitened model).

**Estimation, in the one pass over the data.** The coefficient of a run comes from that run's
own residuals, computed when its data are in memory for the accumulation: the residuals of a
voxel sample (:func:`sample_voxels`) on the run's nuisance and non-latent columns (the latent
block has more columns than a run has volumes, so it is left out; it explains a small part of a
voxel's variance). As in SPM, one coefficient is pooled over voxels: the mean over the sample of
each voxel's lag-1 autocorrelation (SPM, too, normalises each voxel by its residual variance
before pooling). nilearn instead estimates one coefficient per voxel from the residuals of a
first OLS fit of all the data and bins them (``int(ρ·100)/100``) — a second pass over the data.
A pooled estimate has a negligible sampling error (thousands of voxels) where a voxel's own has
``sd ≈ 1/√T``; it assumes one noise process across the brain.

The lag-1 autocorrelation of residuals is biased towards negative values by the projection that
forms them (about ``−(k + 1)/T`` for ``k`` regressors). :func:`estimate_ar1` removes that bias
exactly: it finds the ``ρ`` whose AR(1) process, projected like the data, has the expected
lag-1 autocorrelation observed (:func:`expected_lag1`, ``O(T·k)`` per evaluation).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.signal import lfilter

from ..config import NOISE_MODELS  # noqa: F401  (re-exported: the noise models implemented here)

#: voxels of a run whose residuals give its AR(1) coefficient
AR1_SAMPLE_VOXELS = 2048
#: estimates are clipped to this interval (a stationary, invertible filter)
RHO_BOUNDS = (-0.9, 0.95)


def sample_voxels(n_voxels: int, n: int = AR1_SAMPLE_VOXELS) -> np.ndarray:
    """Evenly spaced voxel indices (all voxels when there are fewer than ``n``), shape (m,)."""
    if n_voxels <= n:
        return np.arange(n_voxels)
    return np.unique(np.linspace(0, n_voxels - 1, n).round().astype(np.int64))


def ar1_correlation(rho: float, n: int) -> np.ndarray:
    """Correlation matrix ``ρ^|i−j|`` of a stationary AR(1) process, shape (n, n)."""
    lags = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    return np.power(float(rho), lags)


def ar1_correlation_times(rho: float, A: np.ndarray) -> np.ndarray:
    """``R A`` for the AR(1) correlation matrix ``R = ρ^|i−j|`` (:func:`ar1_correlation`), by two
    first-order recursions along the first axis: ``O(T·k)`` instead of ``O(T²·k)``.

    ``(RA)_t = Σ_{s≤t} ρ^{t−s} A_s + Σ_{s≥t} ρ^{s−t} A_s − A_t``.

    Parameters
    ----------
    rho : float
    A : ndarray of shape (T, k)

    Returns
    -------
    ndarray of shape (T, k)
    """
    A = np.asarray(A, dtype=np.float64)
    forward = lfilter([1.0], [1.0, -rho], A, axis=0)
    backward = lfilter([1.0], [1.0, -rho], A[::-1], axis=0)[::-1]
    return forward + backward - A


def lag1_autocorrelation(residuals: np.ndarray) -> float:
    """Mean over voxels of ``Σ_t e_t e_{t−1} / Σ_t e_t²`` (voxels with zero residuals left out).

    Parameters
    ----------
    residuals : ndarray of shape (T, V)

    Returns
    -------
    float (NaN when every voxel's residual is zero)
    """
    e = np.asarray(residuals, dtype=np.float64)
    ss = (e * e).sum(axis=0)
    ok = ss > 1e-12 * max(float(ss.max()) if ss.size else 0.0, 1e-300)
    if not ok.any():
        return float("nan")
    lag = (e[1:, ok] * e[:-1, ok]).sum(axis=0)
    return float((lag / ss[ok]).mean())


def expected_lag1(rho: float, basis: np.ndarray) -> float:
    """Lag-1 autocorrelation expected of AR(1) noise after projecting out ``basis``.

    ``E[eᵀSe] / E[eᵀe]`` for ``e = Mε``, ``M = I − QQᵀ``, ``ε`` AR(1) with correlation ``Σ``
    and ``S`` the lag-1 shift: ``tr(S MΣM) / tr(MΣ)`` (the ratio of expectations; the mean of
    per-voxel ratios differs from it by ``O(1/T)`` relative).

    Parameters
    ----------
    rho : float
    basis : ndarray of shape (T, k)
        Orthonormal columns (``QᵀQ = I``).

    Returns
    -------
    float
    """
    Q = np.asarray(basis, dtype=np.float64)
    T = Q.shape[0]
    B = ar1_correlation_times(rho, Q)  # ΣQ
    C = Q.T @ B                        # QᵀΣQ
    # sub-diagonal sums of Σ, QBᵀ, BQᵀ and QCQᵀ (MΣM = Σ − QBᵀ − BQᵀ + QCQᵀ)
    num = (T - 1) * rho - (Q[1:] * B[:-1]).sum() - (B[1:] * Q[:-1]).sum() \
        + ((Q[1:] @ C) * Q[:-1]).sum()
    den = T - np.trace(C)
    return float(num / den)


def estimate_ar1(Y: np.ndarray, basis: np.ndarray) -> float:
    """Pooled AR(1) coefficient of a run's noise, bias-corrected for the residual projection.

    Parameters
    ----------
    Y : ndarray of shape (T, V)
        The run's data at some voxels (e.g. :func:`sample_voxels`).
    basis : ndarray of shape (T, k)
        Orthonormal basis of the columns the residuals are formed on (``QᵀQ = I``), ``k < T − 2``.

    Returns
    -------
    float
        In :data:`RHO_BOUNDS`, rounded to 1e-6 (far below its sampling error) so that a rerun
        gives the same coefficient to the bit whatever last-digit differences of the linear
        algebra; 0.0 when the residuals are all zero.
    """
    Y = np.asarray(Y, dtype=np.float64)
    Q = np.asarray(basis, dtype=np.float64)
    e = Y - Q @ (Q.T @ Y)
    r = lag1_autocorrelation(e)
    if not np.isfinite(r):
        return 0.0
    lo, hi = RHO_BOUNDS
    g_lo, g_hi = expected_lag1(lo, Q) - r, expected_lag1(hi, Q) - r
    if g_lo >= 0:
        return lo
    if g_hi <= 0:
        return hi
    return round(float(brentq(lambda p: expected_lag1(p, Q) - r, lo, hi, xtol=1e-8)), 6)


def whiten_rows(a: torch.Tensor, rho: float) -> torch.Tensor:
    """The AR(1) (Prais–Winsten) filter applied along the first axis: a new tensor ``W a``.

    Parameters
    ----------
    a : Tensor of shape (T, ...) or (T,)
    rho : float

    Returns
    -------
    Tensor of the shape and dtype of ``a``.
    """
    out = torch.empty_like(a)
    whiten_rows_into(a, rho, out)
    return out


def whiten_rows_into(a: torch.Tensor, rho: float, out: torch.Tensor) -> None:
    """``out = W a`` (:func:`whiten_rows`) into a preallocated tensor (``out`` is not ``a``)."""
    torch.mul(a[:1], (1.0 - rho * rho) ** 0.5, out=out[:1])
    torch.sub(a[1:], a[:-1], alpha=rho, out=out[1:])
