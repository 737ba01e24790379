"""Ridge-regularised forward maps for encoding, the penalty chosen by cross-validation.

A latent space of ``D`` dimensions gives every voxel ``D`` weights estimated from the training
trials. With ``D`` in the hundreds and one short trial per image, the least-squares weights
are noisy, and the noise of ``D`` weights adds up in a voxel's predicted response: a
high-dimensional space then predicts worse than a small one even where it is the better model.
Encoding studies therefore fit the weights with a ridge penalty chosen per voxel by
cross-validation (Kay et al. 2008; Huth et al. 2016; the ``himalaya`` package).

Everything here works on accumulated normal equations (``XᵀX``, ``XᵀY``, ``Σy²``), so the
cross-validation needs no second pass over the data: for a training part ``A`` and a held-out
part ``B``, ``β_A(λ) = (X_AᵀX_A + λ s P)⁻¹ X_AᵀY_A`` (``P`` selects the latent columns, ``s``
the mean of their diagonal) and the held-out residual sum of squares of every voxel is
``Σy²_B − 2 β·X_BᵀY_B + βᵀ X_BᵀX_B β``. The penalty applies to the latent block only; the
face, test-image, imagery and nuisance regressors are fitted unpenalised, as in the GLM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .device import GRAM_DTYPE
from .errors import DataError

DEFAULT_GRID = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def _present(ne, columns: Sequence[str]) -> list[int]:
    tiny = torch.finfo(GRAM_DTYPE).tiny
    index = {n: i for i, n in enumerate(ne.names)}
    missing = [c for c in columns if c not in index]
    if missing:
        raise DataError(f"ridge encoding: regressors not in the model: {', '.join(missing)}")
    return [index[c] for c in columns if float(ne.x_ss[index[c]]) > tiny]


def ridge_betas(ne, columns: Sequence[str], penalised: Sequence[str], lam: float,
                voxels: np.ndarray | None = None) -> tuple[torch.Tensor, list[str]]:
    """Betas of a model with a ridge penalty on some of its regressors.

    Parameters
    ----------
    ne : NormalEquations
    columns : sequence of str
        The model's regressors; those absent from ``ne``'s runs are left out.
    penalised : sequence of str
        The penalised regressors (a subset of ``columns``).
    lam : float
        Penalty relative to the mean diagonal of the penalised block of ``XᵀX``.
    voxels : int array, optional
        Solve for these voxels only.

    Returns
    -------
    betas : Tensor of shape (P_present, V or len(voxels)), float64
    names : list of str
    """
    if lam < 0:
        raise DataError(f"ridge encoding: the penalty must be >= 0, got {lam}")
    idx = _present(ne, columns)
    names = [ne.names[i] for i in idx]
    it = torch.as_tensor(idx, device=ne.device)
    A = ne.xtx[it][:, it].clone()
    pen = torch.as_tensor([n in set(penalised) for n in names], device=ne.device)
    if lam and bool(pen.any()):
        scale = torch.diagonal(A)[pen].mean()
        A[pen, pen] += lam * scale
    try:
        L = torch.linalg.cholesky(A)
    except RuntimeError as exc:
        raise DataError(f"ridge encoding: the design is singular at λ = {lam} ({exc})") from exc
    xty = ne.xty[it]
    if voxels is not None:
        xty = xty[:, torch.as_tensor(np.asarray(voxels, dtype=np.int64), device=ne.device)]
    return torch.cholesky_solve(xty, L), names


def heldout_sse(held, betas: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Residual sum of squares of every voxel of ``held`` predicted with ``betas``.

    Parameters
    ----------
    held : NormalEquations
        The held-out runs' accumulators (same design as the training part).
    betas : Tensor of shape (P', V)
    names : list of str
        The regressors of ``betas``' rows.

    Returns
    -------
    Tensor of shape (V,), float64
    """
    index = {n: i for i, n in enumerate(held.names)}
    it = torch.as_tensor([index[n] for n in names], device=held.device)
    G = held.xtx[it][:, it]
    return held.yty - 2.0 * (betas * held.xty[it]).sum(0) + (betas * (G @ betas)).sum(0)


def choose_penalty(parts: Sequence[tuple], columns: Sequence[str], penalised: Sequence[str],
                   grid: Sequence[float] = DEFAULT_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel penalty of least held-out error over the folds.

    Parameters
    ----------
    parts : sequence of (train NormalEquations, held-out NormalEquations)
        The folds (e.g. the two halves, each held out in turn).
    columns, penalised : sequences of str
    grid : sequence of float
        Candidate relative penalties.

    Returns
    -------
    lam : ndarray of shape (V,)
        The chosen penalty of each voxel.
    errors : ndarray of shape (len(grid), V)
        Held-out residual sum of squares summed over folds.
    """
    if not parts:
        raise DataError("ridge encoding: cross-validation needs at least one fold")
    errors = []
    for lam in grid:
        total = None
        for train, held in parts:
            b, names = ridge_betas(train, columns, penalised, float(lam))
            e = heldout_sse(held, b, names)
            total = e if total is None else total + e
        errors.append(total.cpu().numpy())
    errors = np.stack(errors)
    return np.asarray(grid, dtype=np.float64)[np.argmin(errors, axis=0)], errors


def ridge_maps(ne, columns: Sequence[str], penalised: Sequence[str], keep: Sequence[str],
               lam: np.ndarray) -> np.ndarray:
    """Betas of ``keep`` at every voxel, each voxel fitted with its own penalty.

    Parameters
    ----------
    ne : NormalEquations
        All runs.
    columns, penalised : sequences of str
    keep : sequence of str
        Regressors whose betas are returned (e.g. the latents and ``face``).
    lam : array of shape (V,)
        Penalty per voxel (values of the grid).

    Returns
    -------
    ndarray of shape (len(keep), V), float64
    """
    lam = np.asarray(lam, dtype=np.float64)
    if lam.shape != (ne.n_voxels,):
        raise DataError(f"ridge encoding: {lam.shape} penalties for {ne.n_voxels} voxels")
    out = np.full((len(keep), ne.n_voxels), np.nan)
    for value in np.unique(lam):
        vox = np.flatnonzero(lam == value)
        b, names = ridge_betas(ne, columns, penalised, float(value), voxels=vox)
        out[:, vox] = b[[names.index(k) for k in keep]].cpu().numpy()
    return out
