"""Reliability of the test-image responses: split-half correlations and a noise ceiling.

Each test image is shown many times (~45 in ds001761). Fitting the GLM separately on two
halves of the runs (odd / even) gives two independent estimates ``B1, B2`` of every test
image's response pattern, shape ``(N images, V voxels)``. From them:

* **voxel split-half reliability** ``r_v = corr_images(B1[:, v], B2[:, v])`` and its
  Spearman–Brown prediction for the full data ``2 r / (1 + r)``;
* **pattern reliability** per image ``corr_voxels(B1[i], B2[i])``;
* **noise ceiling** per voxel: the fraction of the variance of the full-data test betas
  (across images) that is signal. With independent half noise of variance ``σ²_h``,
  ``cov(B1, B2)`` estimates the signal variance ``s²`` (noise cancels) and
  ``mean((B1 − B2)²) / 2`` estimates ``σ²_h``; the full-data beta averages both halves,
  so its noise variance is ``σ²_h / 2`` and ``NC = s² / (s² + σ²_h / 2)`` (``s²`` clipped
  at 0). ``NC`` is the largest R² any model of the image-specific signal can reach
  (cf. the ncsnr of Allen et al. 2022, with two "trials" being the two halves).

All functions are pure numpy and ignore images whose beta is NaN in either half
(an image absent from one half).
"""

from __future__ import annotations

import numpy as np

from .errors import DataError


def _halves(b1, b2) -> tuple[np.ndarray, np.ndarray]:
    b1 = np.asarray(b1, dtype=np.float64)
    b2 = np.asarray(b2, dtype=np.float64)
    if b1.ndim != 2 or b1.shape != b2.shape:
        raise DataError(f"split halves: expected two (N, V) arrays of one shape, got {b1.shape} "
                        f"and {b2.shape}")
    return b1, b2


def _complete_rows(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    ok = np.isfinite(b1).all(axis=1) & np.isfinite(b2).all(axis=1)
    if ok.sum() < 3:
        raise DataError(f"split halves: {int(ok.sum())} test images are estimated in both halves; "
                        "at least 3 are needed")
    return ok


def spearman_brown(r, factor: float = 2.0) -> np.ndarray:
    """Spearman–Brown prophecy: reliability of ``factor`` times more data, ``k r / (1 + (k−1) r)``.

    Parameters
    ----------
    r : array of any shape
    factor : float

    Returns
    -------
    ndarray of the shape of ``r``
    """
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)


def voxel_split_half(b1, b2) -> np.ndarray:
    """Per-voxel Pearson correlation across test images between the two halves.

    Parameters
    ----------
    b1, b2 : arrays of shape (N, V)
        Test-image betas of each half.

    Returns
    -------
    ndarray of shape (V,)
        NaN where a voxel is constant across images in a half.
    """
    b1, b2 = _halves(b1, b2)
    ok = _complete_rows(b1, b2)
    a, b = b1[ok] - b1[ok].mean(0), b2[ok] - b2[ok].mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1.0), np.nan)


def pattern_split_half(b1, b2) -> np.ndarray:
    """Per-image Pearson correlation across voxels between the two halves' patterns.

    Parameters
    ----------
    b1, b2 : arrays of shape (N, V)

    Returns
    -------
    ndarray of shape (N,)
        NaN for an image missing from a half.
    """
    b1, b2 = _halves(b1, b2)
    a = b1 - b1.mean(1, keepdims=True)
    b = b2 - b2.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def noise_ceiling(b1, b2) -> np.ndarray:
    """Per-voxel noise ceiling of the full-data test betas (fraction of variance, 0..1).

    ``s² = cov(b1, b2)`` (ddof 1, clipped at 0), ``σ²_h = Σ((b1−b1̄) − (b2−b2̄))² / (2 (N−1))``,
    ``NC = s² / (s² + σ²_h / 2)``.

    Parameters
    ----------
    b1, b2 : arrays of shape (N, V)

    Returns
    -------
    ndarray of shape (V,)
        0 where no signal is detectable; NaN where both variances are 0.
    """
    b1, b2 = _halves(b1, b2)
    ok = _complete_rows(b1, b2)
    a, b = b1[ok] - b1[ok].mean(0), b2[ok] - b2[ok].mean(0)
    n = a.shape[0]
    signal = np.clip((a * b).sum(0) / (n - 1), 0.0, None)
    noise_half = ((a - b) ** 2).sum(0) / (2 * (n - 1))
    den = signal + noise_half / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, signal / np.where(den > 0, den, 1.0), np.nan)
