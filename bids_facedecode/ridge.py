"""Choosing the ridge penalty of the inverse map by cross-validated pairwise identification.

The ridge decoder is ``ẑ = b Wᵀ (W Wᵀ + λ s I)⁻¹`` (:func:`bids_facedecode.decode.inverse_map`,
``s`` the mean diagonal of ``W Wᵀ``). What is reported of it is pairwise identification of
decoded against true latents, both centred on the training mean. The penalty is chosen for
that same number, on patterns of individual images that the held-out data provide:

* the folds are groups of runs (sessions, else odd / even runs) accumulated in the one
  streamed pass; the decoder of fold ``f`` inverts the map ``W₋f`` of the other folds, at
  voxels selected from the other folds' runs alone
  (:func:`bids_facedecode.workflow.ridge_inputs.fold_maps`: voxels selected on all the data
  carry noise that the held-out fold shares, and a region without signal would score above
  chance);
* the held-out fold's own map ``W_f`` predicts the pattern of any image from its latents,
  ``b = [z̃, 1] W_f`` (``z̃`` centred on the training mean): an estimate of the image's response
  independent of the decoder, carrying what the held-out runs do not share with the others
  (their noise, drift between sessions), as a test beta does — though not the image's own
  response beyond the linear map, which a test beta also carries;
* the images are training images (never a test image): :func:`probe_latents`;
* their patterns are decoded by the fold's decoder and identified among themselves exactly as
  the test images are (:func:`bids_facedecode.evaluate.pairwise_identification`); the score of a
  penalty is the mean over folds.

Unlike a latent mean squared error, identification does not reward shrinking the decoded vectors
towards the training mean (correlations are scale-free). Its patterns are as noisy as the
held-out fold's map, not as a test beta (a fold's map rests on its share of the training
trials; a test beta on the repetitions of one image): where the fold's map is much noisier,
the criterion errs towards more shrinkage. ``benchmarks/bench_ridge.py`` compares the choice
with the test set's best penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataError
from .evaluate import pairwise_identification

RIDGE_GRID = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
N_PROBES = 200  # probe images: 39,800 ordered pairs per fold


def probe_latents(train_latents: np.ndarray, z_mean: np.ndarray, n: int = N_PROBES) -> np.ndarray:
    """Up to ``n`` training latents, evenly spaced in training order, centred on ``z_mean``.

    Parameters
    ----------
    train_latents : array of shape (N_train, D)
    z_mean : array of shape (D,)
    n : int

    Returns
    -------
    ndarray of shape (min(n, N_train), D), float64
    """
    Z = np.asarray(train_latents, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise DataError(f"ridge: probe latents need shape (N >= 2, D), got {Z.shape}")
    idx = np.unique(np.linspace(0, Z.shape[0] - 1, min(int(n), Z.shape[0])).round().astype(int))
    return Z[idx] - np.asarray(z_mean, dtype=np.float64).ravel()[None, :]


def cv_identification(train_maps: Sequence, held_maps: Sequence, probes, face_index: int,
                      grid=RIDGE_GRID) -> np.ndarray:
    """Cross-validated pairwise identification of held-out predicted patterns, per penalty.

    For each fold: ``ẑᵢ = [z̃ᵢ, 1] W_f M`` (latent columns) with ``M`` the ridge inverse of
    ``W₋f``; the score is ``pairwise_identification(ẑ, z̃)``, averaged over folds. One
    eigendecomposition of ``W₋f W₋fᵀ = U diag(e) Uᵀ`` per fold serves every ``λ``:
    ``ẑ = [z̃, 1] W_f W₋fᵀ U diag(1 / (e + λ s)) U_zᵀ``.

    Parameters
    ----------
    train_maps, held_maps : sequences of arrays of shape (D+1, V_sel), one per fold
        The map of the other folds (``W₋f``) and the fold's own map (``W_f``).
    probes : array of shape (n, D)
        Latents of probe images centred on the training mean (:func:`probe_latents`), n >= 2.
    face_index : int
        Row of the face regressor in the maps.
    grid : sequence of float
        Candidate ``λ`` (relative to the mean diagonal of ``W₋f W₋fᵀ``).

    Returns
    -------
    ndarray of shape (len(grid),)
        In [0, 1] (chance 0.5); NaN where the inverse does not exist (``λ = 0`` with fewer
        voxels than map rows).
    """
    if len(train_maps) != len(held_maps):
        raise DataError("ridge: as many held-out maps as training maps are needed")
    if len(train_maps) < 2:
        raise DataError("ridge: cross-validation needs at least 2 folds (sessions or run groups)")
    Z = np.atleast_2d(np.asarray(probes, dtype=np.float64))
    k, V = np.shape(train_maps[0])
    if Z.shape[0] < 2 or Z.shape[1] != k - 1:
        raise DataError(f"ridge: probes of shape {Z.shape} for maps of {k} rows (D+1)")
    if not 0 <= int(face_index) < k:
        raise DataError(f"ridge: face_index {face_index} out of range for {k} map rows")
    zcols = [r for r in range(k) if r != int(face_index)]
    X = np.empty((Z.shape[0], k))
    X[:, zcols], X[:, int(face_index)] = Z, 1.0
    scores = np.zeros(len(grid))
    for Wtr, Wf in zip(train_maps, held_maps, strict=True):
        Wtr, Wf = np.asarray(Wtr, np.float64), np.asarray(Wf, np.float64)
        if Wtr.shape != (k, V) or Wf.shape != (k, V):
            raise DataError(f"ridge: fold maps of shapes {Wtr.shape} and {Wf.shape}, expected {(k, V)}")
        G = Wtr @ Wtr.T
        e, U = np.linalg.eigh(G)
        scale = float(np.mean(np.diag(G)))
        A0 = X @ (Wf @ Wtr.T) @ U                   # (n, k)
        Uz = U[zcols, :]                             # (D, k)
        for g, lam in enumerate(grid):
            d = e + lam * scale
            if d.min() <= 1e-10 * max(d.max(), np.finfo(float).tiny):
                scores[g] = np.nan  # not invertible (λ = 0 with fewer voxels than rows)
                continue
            scores[g] += pairwise_identification((A0 / d) @ Uz.T, Z).mean
    return scores / len(train_maps)


def choose_ridge(train_maps: Sequence, held_maps: Sequence, probes, face_index: int,
                 grid=RIDGE_GRID) -> tuple[float, np.ndarray]:
    """The ``λ`` of ``grid`` with the largest :func:`cv_identification` (the smallest on ties).

    Returns
    -------
    best : float
    scores : ndarray of shape (len(grid),)
    """
    scores = cv_identification(train_maps, held_maps, probes, face_index, grid)
    if not np.isfinite(scores).any():
        raise DataError("ridge: no candidate penalty gives an invertible decoder")
    return float(grid[int(np.nanargmax(scores))]), scores
