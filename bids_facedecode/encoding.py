"""Encoding accuracy of a latent space: how well its forward map predicts held-out responses.

The GLM estimates, for every latent space, a forward map ``W`` of shape ``(D+1, V)``: the
response of each voxel to a unit of each (training-mean-centred) latent dimension and to a
face. An encoding model predicts the response pattern of a test image from its latents,
``b̂ = z_c W_z + w_face``, without ever fitting on the test images. Comparing the prediction
with the measured test-image betas, voxel by voxel *across test images*, scores how good a
linear model of that voxel the latent space is (Naselaris et al. 2011, NeuroImage 56:400;
Kay et al. 2008, Nature 452:352):

* ``r``: Pearson correlation across test images of predicted and measured betas;
* ``R²``: ``1 − Σ(b − b̂)² / Σ(b − b̄)²`` across test images (negative when the prediction
  is worse than the measured mean);
* both relative to the voxel's noise ceiling ``NC`` (the fraction of the across-image
  variance of the measured betas that is signal, :mod:`bids_facedecode.reliability`):
  ``R² / NC`` and ``r / √NC``, defined where ``NC`` exceeds a floor.

Under the null that a space's latents carry nothing about the responses, the assignment of
latents to test images is exchangeable: permuting the test images' latents gives the null
of any summary of ``r``, and the mean of ``r`` over all permutations is exactly 0
(:func:`permutation_null`). Two spaces are compared on the mean R² of the same voxels with a
paired permutation over test images that swaps the two predictions of an image at random
(:func:`paired_comparison`).
All functions are pure numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import DataError
from .evaluate import as_generator, check_n_perm


class EncodingScores(NamedTuple):
    """Per-voxel encoding accuracy across test images."""

    r: np.ndarray    # (V,) Pearson r; NaN where a voxel is constant
    r2: np.ndarray   # (V,) coefficient of determination; NaN where the measured betas are constant


def _as2d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise DataError(f"{name}: expected shape (N, V), got {a.shape}")
    return a


def predict_patterns(latents_centred, W, face_index: int) -> np.ndarray:
    """Predicted response patterns of images from their latents through a forward map.

    Parameters
    ----------
    latents_centred : array of shape (N, D)
        The images' latents minus the training mean (the GLM's regressors are centred so).
    W : array of shape (D+1, V)
        Betas of the ``D`` latent regressors and of ``face``.
    face_index : int
        Row of ``W`` that holds the face regressor.

    Returns
    -------
    ndarray of shape (N, V)
        ``z_c W_z + w_face``.
    """
    Z = _as2d(latents_centred, "latents")
    W = _as2d(W, "forward map")
    if W.shape[0] != Z.shape[1] + 1:
        raise DataError(f"forward map: {W.shape[0]} rows for {Z.shape[1]} latents + face")
    if not 0 <= face_index < W.shape[0]:
        raise DataError(f"forward map: face_index {face_index} outside 0..{W.shape[0] - 1}")
    rows = np.delete(np.arange(W.shape[0]), face_index)
    return Z @ W[rows] + W[face_index][None, :]


def _paired(observed, predicted) -> tuple[np.ndarray, np.ndarray]:
    B = _as2d(observed, "measured betas")
    P = _as2d(predicted, "predicted betas")
    if B.shape != P.shape:
        raise DataError(f"encoding: measured {B.shape} and predicted {P.shape} differ")
    if B.shape[0] < 3:
        raise DataError(f"encoding: {B.shape[0]} test images; at least 3 are needed")
    return B, P


def _columnwise_r(B: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Pearson r of matching columns; ``P`` may carry leading batch axes ``(..., N, V)``."""
    b = B - B.mean(0)
    p = P - P.mean(-2, keepdims=True)
    den = np.sqrt((b * b).sum(0) * (p * p).sum(-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (b * p).sum(-2) / np.where(den > 0, den, 1.0), np.nan)


def encoding_scores(observed, predicted) -> EncodingScores:
    """Per-voxel correlation and R² of predicted against measured betas, across images.

    Parameters
    ----------
    observed : array of shape (N, V)
        Measured test-image betas (never used to fit the prediction).
    predicted : array of shape (N, V)

    Returns
    -------
    EncodingScores
        ``r`` and ``r2``, each of shape (V,).
    """
    B, P = _paired(observed, predicted)
    sst = ((B - B.mean(0)) ** 2).sum(0)
    sse = ((B - P) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)
    return EncodingScores(_columnwise_r(B, P), r2)


def ceiling_normalised(scores: EncodingScores, noise_ceiling, floor: float = 0.1) -> EncodingScores:
    """Scores relative to the noise ceiling: ``r / √NC`` and ``R² / NC``.

    Parameters
    ----------
    scores : EncodingScores
        Of voxels ``(V,)``.
    noise_ceiling : array of shape (V,)
        Fraction of the across-image variance that is signal (0..1).
    floor : float
        Voxels whose ceiling is below it (or NaN) get NaN: dividing by a ceiling near 0
        turns noise into arbitrarily large ratios.

    Returns
    -------
    EncodingScores
    """
    nc = np.asarray(noise_ceiling, dtype=np.float64)
    if nc.shape != scores.r.shape:
        raise DataError(f"noise ceiling: shape {nc.shape} differs from the scores' {scores.r.shape}")
    ok = np.isfinite(nc) & (nc >= floor)
    safe = np.where(ok, nc, 1.0)
    return EncodingScores(np.where(ok, scores.r / np.sqrt(safe), np.nan),
                          np.where(ok, scores.r2 / safe, np.nan))


def permutation_null(observed, predicted, n_perm: int = 1000, rng=None, batch: int = 64
                     ) -> tuple[float, np.ndarray, float]:
    """Mean encoding ``r`` over voxels and its null from permuted test-image assignments.

    The same permutation of the test images is applied to every voxel, so the null keeps
    the spatial correlation of the noise.

    Parameters
    ----------
    observed, predicted : arrays of shape (N, V)
    n_perm : int
    rng : numpy Generator or seed
    batch : int
        Permutations evaluated together (bounds memory to ``batch × N × V`` floats).

    Returns
    -------
    observed_mean : float
        Mean over voxels (NaN voxels left out) of the per-voxel ``r``.
    null : ndarray of shape (n_perm,)
    p : float
        One-sided ``(1 + #{null ≥ observed}) / (1 + n_perm)``.
    """
    B, P = _paired(observed, predicted)
    check_n_perm(n_perm)
    rng = as_generator(rng)
    obs = float(np.nanmean(_columnwise_r(B, P)))
    null = np.empty(int(n_perm))
    for start in range(0, int(n_perm), batch):
        k = min(batch, int(n_perm) - start)
        perms = np.argsort(rng.random((k, B.shape[0])), axis=1)
        null[start:start + k] = np.nanmean(_columnwise_r(B, P[perms]), axis=1)
    p = (1 + int(np.sum(null >= obs - 1e-12))) / (1 + int(n_perm))
    return obs, null, p


class PairedComparison(NamedTuple):
    """Paired comparison of two spaces over the same voxels."""

    r2_a: float         # mean over voxels of space a's R²
    r2_b: float
    difference: float   # r2_a − r2_b
    p: float            # two-sided paired permutation p


def paired_comparison(observed, predicted_a, predicted_b, n_perm: int = 1000, rng=None
                      ) -> PairedComparison:
    """Which of two spaces predicts the measured betas better, with a paired permutation test.

    The statistic is the difference of the mean per-voxel R². It is a sum over test images,
    ``Δ = Σᵢ dᵢ`` with ``dᵢ = mean_v ((bᵢᵥ − b̂ᴮᵢᵥ)² − (bᵢᵥ − b̂ᴬᵢᵥ)²) / SSTᵥ``, and
    swapping the two spaces' predictions of image ``i`` flips the sign of ``dᵢ`` alone. Under
    the null that the two predictions of each image are exchangeable, ``Δ``'s null is that of
    random sign flips: exact (all ``2ᴺ`` flips) when ``2ᴺ ≤ n_perm``, else ``n_perm`` random
    flips.

    Parameters
    ----------
    observed, predicted_a, predicted_b : arrays of shape (N, V)
        Voxels whose measured betas are constant across images are left out.
    n_perm : int
    rng : numpy Generator or seed

    Returns
    -------
    PairedComparison
    """
    B, Pa = _paired(observed, predicted_a)
    _, Pb = _paired(observed, predicted_b)
    check_n_perm(n_perm)
    sst = ((B - B.mean(0)) ** 2).sum(0)
    keep = sst > 0
    if not keep.any():
        raise DataError("paired comparison: the measured betas are constant in every voxel")
    B, Pa, Pb, sst = B[:, keep], Pa[:, keep], Pb[:, keep], sst[keep]
    r2_a = float(np.mean(1.0 - ((B - Pa) ** 2).sum(0) / sst))
    r2_b = float(np.mean(1.0 - ((B - Pb) ** 2).sum(0) / sst))
    d = (((B - Pb) ** 2 - (B - Pa) ** 2) / sst).mean(axis=1)   # (N,), sums to r2_a − r2_b
    n = d.size
    if 2 ** n <= int(n_perm):
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = 1 - 2 * (as_generator(rng).random((int(n_perm), n)) < 0.5)
    null = signs @ d
    diff = float(d.sum())
    extreme = int(np.sum(np.abs(null) >= abs(diff) - 1e-12))
    p = extreme / null.size if 2 ** n <= int(n_perm) else (1 + extreme) / (1 + null.size)
    return PairedComparison(r2_a, r2_b, diff, p)


def best_space_map(scores: dict[str, np.ndarray], min_score: float = 0.0
                   ) -> tuple[np.ndarray, list[str]]:
    """Voxelwise label of the space whose score is highest.

    Parameters
    ----------
    scores : dict of space name -> array of shape (V,)
        One score per voxel and space (e.g. encoding ``r``); NaN counts as no score.
    min_score : float
        A voxel whose best score does not exceed it gets label 0 (no space predicts it).

    Returns
    -------
    labels : ndarray of shape (V,), int16
        0 for none, ``k + 1`` for the ``k``-th space of ``names``.
    names : list of str
        The spaces in the order of their labels (the order of ``scores``).
    """
    if not scores:
        raise DataError("best space: no spaces given")
    names = list(scores)
    S = np.stack([np.asarray(scores[n], dtype=np.float64) for n in names])
    if S.ndim != 2:
        raise DataError(f"best space: expected one (V,) score per space, got shape {S.shape[1:]}")
    filled = np.where(np.isnan(S), -np.inf, S)
    best = filled.argmax(axis=0)
    top = filled.max(axis=0)
    labels = np.where(top > min_score, best + 1, 0).astype(np.int16)
    return labels, names


class PermutationMaps(NamedTuple):
    """Voxel and region permutation tests of the encoding ``r``, from one set of permutations."""

    r: np.ndarray                              # (V,) observed r; NaN where undefined
    p: np.ndarray                              # (V,) one-sided permutation p; NaN where r is
    regions: dict[str, tuple[float, float]]    # region -> (mean r over its voxels, p)


def permutation_maps(observed, predicted, n_perm: int = 1000, rng=None,
                     regions: dict[str, np.ndarray] | None = None,
                     max_floats: int = 2 ** 24) -> PermutationMaps:
    """Per-voxel and per-region permutation p of the encoding ``r`` over test images.

    Each permutation reassigns the predicted patterns to the test images (the same
    permutation for every voxel, so a region's null keeps the spatial correlation of the
    noise); a voxel's p counts the permutations whose ``r`` reaches the observed one, a
    region's the permutations whose mean ``r`` over its voxels does (the statistic of
    :func:`permutation_null`). Both are ``(1 + #{null ≥ observed}) / (1 + n_perm)``.

    Parameters
    ----------
    observed, predicted : arrays of shape (N, V)
    n_perm : int
    rng : numpy Generator or seed
    regions : dict of name -> int indices into the V voxels, optional
    max_floats : int
        Bound on the permuted predictions held at once (``batch × N × V``).

    Returns
    -------
    PermutationMaps
    """
    B, P = _paired(observed, predicted)
    check_n_perm(n_perm)
    rng = as_generator(rng)
    n, V = B.shape

    def standardised(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = a - a.mean(0)
        norm = np.sqrt((c * c).sum(0))
        ok = norm > 0
        return np.where(ok, c / np.where(ok, norm, 1.0), 0.0), ok

    b, ok_b = standardised(B)
    p, ok_p = standardised(P)
    ok = ok_b & ok_p
    r = np.where(ok, (b * p).sum(0), np.nan)
    regions = {k: np.asarray(v, np.int64) for k, v in (regions or {}).items()}
    inside = {k: v[ok[v]] for k, v in regions.items()}
    obs = {k: float(r[v].mean()) if v.size else float("nan") for k, v in inside.items()}
    hits = np.zeros(V, np.int64)
    region_hits = dict.fromkeys(regions, 0)
    batch = max(1, int(max_floats) // max(1, n * V))
    for start in range(0, int(n_perm), batch):
        k = min(batch, int(n_perm) - start)
        perms = np.argsort(rng.random((k, n)), axis=1)
        null = np.einsum("nv,knv->kv", b, p[perms])            # (k, V)
        hits += (null >= r - 1e-12).sum(0)
        for name, v in inside.items():
            if v.size:
                region_hits[name] += int(np.sum(null[:, v].mean(1) >= obs[name] - 1e-12))
    pv = np.where(ok, (1 + hits) / (1 + int(n_perm)), np.nan)
    out = {name: (obs[name], (1 + region_hits[name]) / (1 + int(n_perm))
                  if inside[name].size else float("nan")) for name in regions}
    return PermutationMaps(r, pv, out)


def fdr_significant(p, q: float = 0.05) -> np.ndarray:
    """Benjamini–Hochberg at level ``q`` over the finite entries of ``p``, shape (V,) bool."""
    from scipy.stats import false_discovery_control

    p = np.asarray(p, dtype=np.float64)
    out = np.zeros(p.shape, bool)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = false_discovery_control(p[finite], method="bh") <= q
    return out
