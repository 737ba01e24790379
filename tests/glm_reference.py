"""Full-solve GLM statistics from the normal equations, for tests only.

The package computes its statistics from one triangular solve (``glm.whiten``); these are the
textbook formulas on the full betas of ``glm.solve`` (residual variance, F of a block of
regressors, t of a contrast, p-values), checked against nilearn in ``tests/test_glm.py`` and
used as the reference of ``glm.whiten`` and ``glm.block_betas`` elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from bids_facedecode.device import GRAM_DTYPE
from bids_facedecode.errors import DataError
from bids_facedecode.glm import (
    NormalEquations,
    cholesky_factor,
    column_indices,
    contrast_weights,
)


def residual_variance(ne: NormalEquations, betas: torch.Tensor) -> torch.Tensor:
    """``σ² = (Σy² − βᵀXᵀY) / dof`` per voxel at the least-squares solution, shape (V,).

    ``dof = n_obs − n_nuisance − P``; no residual matrix is formed.
    """
    if ne.dof <= 0:
        raise DataError(
            f"GLM: no residual degrees of freedom ({ne.n_obs} volumes, {ne.n_nuisance} nuisance "
            f"and {ne.n_regressors} shared regressors)"
        )
    b = betas.to(device=ne.device, dtype=GRAM_DTYPE)
    rss = ne.yty - (b * ne.xty).sum(dim=0)
    return torch.clamp(rss, min=0.0) / ne.dof


def inverse_gram(ne: NormalEquations) -> torch.Tensor:
    """``(XᵀX)⁻¹`` of the accumulated (nuisance-free) design, shape (P, P)."""
    L, s = cholesky_factor(ne)
    return torch.cholesky_inverse(L) / (s[:, None] * s[None, :])


def f_statistic(ne: NormalEquations, betas: torch.Tensor, columns,
                voxel_chunk: int | None = 16384) -> torch.Tensor:
    """F of the joint null ``β_c = 0`` of a block of regressors, shape (V,).

    ``F = β_cᵀ [(XᵀX)⁻¹]_cc⁻¹ β_c / (q σ²)`` with ``q = len(columns)``, on ``(q, dof)``
    degrees of freedom; the quadratic form ``voxel_chunk`` voxels at a time.
    """
    idx = column_indices(ne, columns)
    q = len(idx)
    sigma2 = residual_variance(ne, betas)
    inv = inverse_gram(ne)
    ii = torch.tensor(idx, device=ne.device)
    A = inv[ii][:, ii]
    LA, info = torch.linalg.cholesky_ex(A)
    if int(info) != 0:
        raise DataError("F test: the covariance of the tested block is not positive definite")
    b = betas.to(device=ne.device, dtype=GRAM_DTYPE)[ii]
    V = b.shape[1]
    step = V if not voxel_chunk else int(voxel_chunk)
    quad = torch.empty(V, dtype=GRAM_DTYPE, device=ne.device)
    for start in range(0, V, step):
        w = torch.linalg.solve_triangular(LA, b[:, start : start + step], upper=False)
        quad[start : start + step] = (w * w).sum(dim=0)  # βᵀA⁻¹β = ‖L_A⁻¹β‖²
    return quad / (q * sigma2)


def t_statistic(ne: NormalEquations, betas: torch.Tensor, contrast) -> torch.Tensor:
    """t of a contrast ``cᵀβ`` (a name, ``{name: weight}`` or weights), shape (V,), ``dof`` d.o.f."""
    c = contrast_weights(ne.names, contrast, ne.device)
    sigma2 = residual_variance(ne, betas)
    effect = c @ betas.to(device=ne.device, dtype=GRAM_DTYPE)
    return effect / torch.sqrt((c @ inverse_gram(ne) @ c) * sigma2)


def f_pvalue(F, q: int, dof: int) -> np.ndarray:
    """Upper-tail p-values of F statistics on ``(q, dof)`` degrees of freedom, shape (V,)."""
    F = F.detach().cpu().numpy() if isinstance(F, torch.Tensor) else np.asarray(F)
    return stats.f.sf(F, q, dof)
