"""Voxel selection and the inverse of the brain-to-latent linear map (VanRullen & Reddy, 2019).

The GLM gives ``W`` of shape ``(D+1, V)``: the betas of ``z1..zD`` and ``face``. A
pattern ``b`` (a row of betas of a test image or an imagery trial over the selected
voxels) is decoded as the least-squares latent ``ẑ = b Wᵀ (W Wᵀ)⁻¹``; the ``face``
coefficient is dropped and the training mean added back.
"""

from __future__ import annotations

import numpy as np
import torch

from .device import GRAM_DTYPE
from .errors import DataError, UsageError
from .tensors import as_tensor


def select_voxels(score: np.ndarray, n_voxels: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``n_voxels`` highest scores (e.g. the F statistic of the z block).

    Parameters
    ----------
    score : array of shape (V,)
        NaN counts as the lowest score.
    n_voxels : int
        How many voxels to keep.
    mask : bool array of shape (V,), optional
        Restrict the candidates (e.g. a region of interest).

    Returns
    -------
    ndarray of shape (n_voxels,), int64
        Voxel indices by decreasing score; ties keep the lower index first.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 1:
        raise DataError(f"voxel scores: expected shape (V,), got {score.shape}")
    if int(n_voxels) < 1:
        raise UsageError(f"n_voxels: must be >= 1, got {n_voxels}")
    candidates = np.arange(score.size)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != score.shape:
            raise DataError(
                f"voxel mask: shape {mask.shape} differs from the scores' {score.shape}"
            )
        candidates = candidates[mask]
    if int(n_voxels) > candidates.size:
        raise DataError(
            f"n_voxels: {n_voxels} voxels requested but only {candidates.size} are available"
        )
    key = np.where(np.isnan(score[candidates]), -np.inf, score[candidates])
    order = np.argsort(-key, kind="stable")
    return candidates[order[: int(n_voxels)]].astype(np.int64)


def inverse_map(W, ridge: float = 0.0, device: torch.device | str | None = None) -> torch.Tensor:
    """Right pseudo-inverse of the forward map: ``Wᵀ (W Wᵀ + λ I)⁻¹``.

    Parameters
    ----------
    W : array or Tensor of shape (D+1, V_sel)
        Forward map (betas of ``z1..zD, face`` over the selected voxels), ``V_sel >= D+1``.
    ridge : float
        ``λ`` relative to the mean diagonal of ``W Wᵀ`` (0: the paper's plain inverse).
    device : torch.device or str, optional
        Where to compute (default: ``W``'s device, else CPU).

    Returns
    -------
    Tensor of shape (V_sel, D+1), float64.

    Raises
    ------
    DataError
        When ``W Wᵀ`` is singular (fewer voxels than latents, or degenerate maps).
    """
    if ridge < 0:
        raise UsageError(f"ridge: must be >= 0, got {ridge}")
    dev = (
        torch.device(device)
        if device is not None
        else (W.device if isinstance(W, torch.Tensor) else torch.device("cpu"))
    )
    Wt = as_tensor(W, dev, GRAM_DTYPE)
    if Wt.ndim != 2:
        raise DataError(f"forward map: expected shape (D+1, V), got {tuple(Wt.shape)}")
    k, v = Wt.shape
    if v < k and ridge == 0:
        raise DataError(
            f"forward map: {v} selected voxels cannot invert {k} regressors; "
            "select at least as many voxels as latents + 1, or use a ridge"
        )
    G = Wt @ Wt.T
    if ridge:
        G = G + ridge * torch.diagonal(G).mean() * torch.eye(k, dtype=G.dtype, device=dev)
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) != 0:
        raise DataError("forward map: W Wᵀ is singular; increase n_voxels or use a ridge")
    # Wᵀ G⁻¹ = (G⁻¹ W)ᵀ since G is symmetric
    return torch.cholesky_solve(Wt, L).T


def decode_latents(
    B,
    W,
    z_mean,
    face_index: int,
    ridge: float = 0.0,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Decode latent vectors from brain patterns.

    Parameters
    ----------
    B : array or Tensor of shape (N, V_sel)
        Patterns (betas of test images or imagery trials) over the selected voxels.
    W : array or Tensor of shape (D+1, V_sel)
        Forward map over the same voxels.
    z_mean : array of shape (D,)
        Training mean of the latents (the design used centred latents).
    face_index : int
        Row of ``W`` holding the ``face`` regressor (``D`` in the shared column order).
    ridge : float
        See :func:`inverse_map`.
    device : torch.device or str, optional

    Returns
    -------
    ndarray of shape (N, D), float32
    """
    dev = (
        torch.device(device)
        if device is not None
        else (W.device if isinstance(W, torch.Tensor) else torch.device("cpu"))
    )
    Bt = as_tensor(B, dev, GRAM_DTYPE)
    if Bt.ndim == 1:
        Bt = Bt[None, :]
    Wt = as_tensor(W, dev, GRAM_DTYPE)
    if Bt.shape[1] != Wt.shape[1]:
        raise DataError(
            f"decode: patterns have {Bt.shape[1]} voxels but the forward map {Wt.shape[1]}"
        )
    k = Wt.shape[0]
    if not 0 <= int(face_index) < k:
        raise DataError(f"decode: face_index {face_index} out of range for {k} map rows")
    zm = np.asarray(z_mean, dtype=np.float64).ravel()
    if zm.size != k - 1:
        raise DataError(f"decode: z_mean has {zm.size} values, the map {k - 1} latents")
    coef = Bt @ inverse_map(Wt, ridge=ridge, device=dev)  # (N, D+1)
    keep = [i for i in range(k) if i != int(face_index)]
    Z = coef[:, keep].cpu().numpy() + zm[None, :]
    return Z.astype(np.float32)


def forward_map(betas, names: list[str], voxels: np.ndarray | None = None) -> np.ndarray:
    """Extract ``W`` (rows ``z1..zD, face``) from GLM betas.

    Parameters
    ----------
    betas : array or Tensor of shape (P, V)
    names : list of str, length P
        Regressor names; the ``z`` block is ``z1..zD`` followed by ``face``.
    voxels : int array of shape (n,), optional
        Selected voxel indices.

    Returns
    -------
    ndarray of shape (D+1, n) float64, with ``face`` as the last row.
    """
    if "face" not in names:
        raise DataError("forward map: no 'face' regressor among the betas")
    D = names.index("face")
    if names[:D] != [f"z{d}" for d in range(1, D + 1)]:
        raise DataError("forward map: betas do not start with the z1..zD block")
    b = betas.detach().cpu().numpy() if isinstance(betas, torch.Tensor) else np.asarray(betas)
    W = b[: D + 1]
    if voxels is not None:
        W = W[:, np.asarray(voxels)]
    return np.asarray(W, dtype=np.float64)


def decode_latents_wls(B, W, z_mean, face_index: int, noise_var, ridge: float = 0.0,
                       device: torch.device | str | None = None) -> np.ndarray:
    """Weighted least-squares decoding: voxels weighted by their inverse noise variance.

    ``ẑ = b Σ⁻¹ Wᵀ (W Σ⁻¹ Wᵀ)⁻¹`` with ``Σ = diag(noise_var)``: the maximum-likelihood
    latent under independent Gaussian voxel noise. Computed as the plain decoder on
    whitened patterns and maps (``b / σ``, ``W / σ``).

    Parameters
    ----------
    B : array of shape (N, V_sel)
    W : array of shape (D+1, V_sel)
    z_mean : array of shape (D,)
    face_index : int
    noise_var : array of shape (V_sel,)
        Residual variance per voxel (``glm.Whitened.residual_variance``), > 0.
    ridge : float
        See :func:`inverse_map` (relative to the whitened ``W Wᵀ``).
    device : torch.device or str, optional

    Returns
    -------
    ndarray of shape (N, D), float32
    """
    var = np.asarray(noise_var, dtype=np.float64).ravel()
    W = np.asarray(W, dtype=np.float64)
    B = np.atleast_2d(np.asarray(B, dtype=np.float64))
    if var.size != W.shape[1]:
        raise DataError(f"wls: {var.size} noise variances for {W.shape[1]} voxels")
    if not np.all(np.isfinite(var)) or np.any(var <= 0):
        raise DataError("wls: noise variances must be finite and > 0 (a voxel without residual "
                        "variance cannot be weighted)")
    scale = 1.0 / np.sqrt(var)
    return decode_latents(B * scale, W * scale, z_mean, face_index, ridge=ridge, device=device)
