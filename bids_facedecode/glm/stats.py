"""Voxel statistics of a fitted GLM from one triangular solve (no full ``P × V`` betas).

With the scaled Gram matrix factored as ``XᵀX = S L Lᵀ S`` (``S = diag(s)``), let
``U = L⁻¹ S⁻¹ XᵀY`` (``P × V``, one triangular solve: ``P²·V`` flops instead of the ``2·P²·V``
of a full Cholesky solve). Then, per voxel,

* explained sum of squares ``βᵀXᵀY = ‖U‖²``, so ``RSS = Σy² − ‖U‖²``;
* when the tested block is ordered last, its extra sum of squares is ``‖U_last‖²`` (the
  sequential sums of squares of a Cholesky / QR fit), so
  ``F = ‖U_last‖² / (q σ²)`` — the same F as ``β_cᵀ[(XᵀX)⁻¹]_cc⁻¹β_c / (q σ²)``;
* a contrast ``cᵀβ = wᵀU`` with ``w = L⁻¹ S⁻¹ c`` and ``Var = ‖w‖² σ²``;
* the betas of any voxels are a back-substitution ``β = S⁻¹ L⁻ᵀ U`` of those columns only.

The participant level only needs betas at the selected voxels (decoding) and F, t and σ² maps
at every voxel, so :class:`Whitened` gives them all from one solve, where a full solve and its
F and t statistics would each make a ``P × V`` pass. A model on a subset of the accumulated
regressors (one latent space of a joint fit) is read straight from the accumulator, without
copying it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..device import GRAM_DTYPE
from ..errors import DataError
from .normal_equations import NormalEquations, column_indices, contrast_weights, factor_gram


@dataclass
class Whitened:
    """A GLM on a subset of accumulated regressors, whitened once.

    Attributes
    ----------
    names : list of str, length P
        The model's regressors, in the order asked for (``columns`` of :func:`whiten`).
    order : Tensor of shape (P,), int64
        Positions in ``names`` of the whitened order (tested block last).
    L : Tensor of shape (P, P), float64
        Cholesky factor of the scaled Gram matrix in the whitened order.
    s : Tensor of shape (P,), float64
        Column scales in the whitened order.
    U : Tensor of shape (P, V), float64
        ``L⁻¹ S⁻¹ XᵀY`` in the whitened order.
    yty : Tensor of shape (V,), float64
    dof : int
        Residual degrees of freedom of this model.
    n_tested : int
        Size of the tested block (the last rows of ``U``).
    """

    names: list[str]
    order: torch.Tensor
    L: torch.Tensor
    s: torch.Tensor
    U: torch.Tensor
    yty: torch.Tensor
    dof: int
    n_tested: int
    _sigma2: torch.Tensor | None = field(default=None, repr=False)

    @property
    def n_voxels(self) -> int:
        """``V``."""
        return int(self.U.shape[1])

    def residual_variance(self) -> torch.Tensor:
        """``σ² = (Σy² − ‖U‖²) / dof`` per voxel, shape (V,), float64."""
        if self._sigma2 is None:
            if self.dof <= 0:
                raise DataError(f"GLM: no residual degrees of freedom ({self.dof})")
            explained = torch.linalg.vector_norm(self.U, dim=0).square_()
            self._sigma2 = torch.clamp(self.yty - explained, min=0.0) / self.dof
        return self._sigma2

    def f_statistic(self) -> torch.Tensor:
        """F of the joint null on the tested block, shape (V,), on ``(n_tested, dof)`` d.o.f."""
        q = self.n_tested
        if q < 1:
            raise DataError("F test: no tested regressors")
        return torch.linalg.vector_norm(self.U[-q:], dim=0).square_() / (q * self.residual_variance())

    def t_statistic(self, contrast) -> torch.Tensor:
        """t of a contrast (a name, ``{name: weight}``, or weights in ``names`` order), shape (V,)."""
        c = contrast_weights(self.names, contrast, self.U.device, what="model")
        c = c[self.order] / self.s
        w = torch.linalg.solve_triangular(self.L, c[:, None], upper=False)[:, 0]
        effect = w @ self.U
        return effect / torch.sqrt(w.square().sum() * self.residual_variance())

    def betas(self, voxels: np.ndarray | None = None) -> torch.Tensor:
        """Betas of some voxels (all when None), rows in ``names`` order, shape (P, n), float64."""
        Uv = self.U if voxels is None else self.U[:, torch.as_tensor(np.asarray(voxels),
                                                                      device=self.U.device)]
        b = torch.linalg.solve_triangular(self.L.T, Uv, upper=True) / self.s[:, None]
        out = torch.empty_like(b)
        out[self.order] = b
        return out


def whiten(ne: NormalEquations, columns: Sequence[str], tested: Sequence[str] = ()) -> Whitened:
    """Whiten the GLM restricted to ``columns``, with the ``tested`` block ordered last.

    Parameters
    ----------
    ne : NormalEquations
        The accumulator (not copied; only the rows of ``columns`` are read).
    columns : sequence of str
        The model's regressors (a subset of ``ne.names``).
    tested : sequence of str
        Regressors of the F test (a subset of ``columns``).

    Returns
    -------
    Whitened

    Raises
    ------
    DataError
        When the model's design is singular (the message names the regressors).
    """
    if ne.n_obs == 0:
        raise DataError("GLM: no runs were accumulated")
    columns = list(columns)
    idx = column_indices(ne, columns)
    if len(set(idx)) != len(idx):
        raise DataError("whiten: a regressor is selected twice")
    tested_set = set(tested)
    if not tested_set <= set(columns):
        raise DataError("whiten: the tested regressors are not all in the model")
    order = [k for k, c in enumerate(columns) if c not in tested_set]
    order += [k for k, c in enumerate(columns) if c in tested_set]
    dev = ne.device
    rows = torch.as_tensor([idx[k] for k in order], device=dev)
    L, s = factor_gram(ne.xtx[rows][:, rows], ne.x_ss[rows], [columns[k] for k in order])
    U = torch.index_select(ne.xty, 0, rows).div_(s[:, None])
    torch.linalg.solve_triangular(L, U, upper=False, out=U)  # in place: one P × V array
    return Whitened(
        names=columns, order=torch.as_tensor(order, device=dev), L=L, s=s, U=U, yty=ne.yty,
        dof=ne.n_obs - ne.n_nuisance - len(columns), n_tested=len(tested_set),
    )


def block_betas(
    ne: NormalEquations,
    columns: Sequence[str],
    keep: Sequence[str],
    minus: Sequence[NormalEquations] = (),
) -> tuple[torch.Tensor, list[str]]:
    """Betas of a few regressors at every voxel, through rows of the inverse Gram matrix.

    The model is ``ne − Σ minus`` (e.g. the runs of one half: the total minus the other half)
    restricted to the regressors of ``columns`` that occur in its runs; ``keep`` are the
    regressors whose betas are wanted. Cost ``2·k·P·V`` for ``k = len(keep)``, and no
    ``P × V`` copy.

    Parameters
    ----------
    ne : NormalEquations
    columns : sequence of str
    keep : sequence of str
    minus : sequence of NormalEquations

    Returns
    -------
    betas : Tensor of shape (k_present, V), float64
    names : list of str
        The regressors of ``keep`` present in the model, in ``keep`` order.
    """
    idx = column_indices(ne, list(columns))
    xtx = ne.xtx.clone()
    x_ss = ne.x_ss.clone()
    n_obs = ne.n_obs
    for m in minus:
        if m.names != ne.names:
            raise DataError("block_betas: accumulators of different designs")
        xtx -= m.xtx
        x_ss -= m.x_ss
        n_obs -= m.n_obs
    if n_obs <= 0:
        raise DataError("GLM: no runs in this part of the data")
    tiny = torch.finfo(GRAM_DTYPE).tiny
    present = [i for i in idx if float(x_ss[i]) > tiny]
    names = [ne.names[i] for i in present]
    kept = [n for n in keep if n in names]
    if not kept:
        return ne.xty.new_zeros((0, ne.n_voxels)), []
    it = torch.as_tensor(present, device=ne.device)
    L, s = factor_gram(xtx[it][:, it], x_ss[it], names)
    # rows of (XᵀX)⁻¹ for the kept regressors, spread over all accumulated columns
    E = torch.zeros((len(present), len(kept)), dtype=GRAM_DTYPE, device=ne.device)
    for j, n in enumerate(kept):
        E[names.index(n), j] = 1.0
    rows_small = torch.cholesky_solve(E / s[:, None], L) / s[:, None]  # (P', k)
    A = torch.zeros((len(kept), ne.n_regressors), dtype=GRAM_DTYPE, device=ne.device)
    A[:, it] = rows_small.T
    betas = A @ ne.xty
    for m in minus:
        betas -= A @ m.xty
    return betas, kept
