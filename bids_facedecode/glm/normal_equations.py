"""The joint GLM's normal equations: accumulators, the nuisance basis, the Cholesky solve.

Runs are fitted jointly with run-specific nuisance regressors (drift, intercept, confounds). By
the Frisch–Waugh–Lovell theorem, the shared coefficients of the joint model with a
block-diagonal nuisance design equal those of the model in which each run's nuisance subspace
has been projected out of that run's ``X`` and ``Y``. So each run contributes ``X̃ᵀX̃``,
``X̃ᵀỸ`` and ``Σỹ²`` (``~`` = residualised on the run's nuisance columns) and is then
forgotten: memory is ``O(P² + P·V)``, never ``O(T·V)`` for all runs
(:mod:`bids_facedecode.glm.accumulate` adds the runs).

The accumulators are float64; ``precision`` records the arithmetic of the per-run ``X̃ᵀỸ``
product (``"double"``: float64; ``"mixed"``: float32 added to the float64 accumulator).
Everything here is written once on torch tensors and runs unchanged on CPU and CUDA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import PRECISIONS
from ..device import GRAM_DTYPE
from ..errors import DataError, UsageError
from ..tensors import as_tensor

# a scaled Gram matrix whose smallest/largest eigenvalue ratio falls below this is singular
RCOND = 1e-10


@dataclass
class NormalEquations:
    """Accumulated sufficient statistics of the joint GLM.

    Attributes
    ----------
    xtx : Tensor of shape (P, P), float64
        ``Σ_runs X̃ᵀX̃``.
    xty : Tensor of shape (P, V), float64
        ``Σ_runs X̃ᵀỸ``.
    yty : Tensor of shape (V,), float64
        ``Σ_runs Σ_t ỹ²``.
    n_obs : int
        Number of volumes accumulated.
    n_nuisance : int
        Number of nuisance dimensions projected out (sum of each run's nuisance rank).
    names : list of str, length P
        Regressor names (the shared design columns).
    x_ss : Tensor of shape (P,), float64
        ``Σ_runs Σ_t x²`` before nuisance removal (to tell absent regressors from
        regressors the nuisance explains).
    precision : {"double", "mixed"}
        Arithmetic of the per-run ``X̃ᵀỸ`` product.
    workspace : dict
        Buffers reused from one :func:`~bids_facedecode.glm.accumulate.accumulate_runs` call to
        the next (fresh large allocations cost page faults on every batch);
        ``workspace.clear()`` frees them.
    noise : dict
        The noise model the runs were accumulated with, set by the participant level's pass:
        ``{"model": "ar1" | "ols", "ar1": {run label: AR(1) coefficient}}`` (empty otherwise;
        not carried by :func:`subset` and the fold arithmetic).
    """

    xtx: torch.Tensor
    xty: torch.Tensor
    yty: torch.Tensor
    n_obs: int
    n_nuisance: int
    names: list[str]
    x_ss: torch.Tensor
    precision: str = "double"
    workspace: dict = field(default_factory=dict, repr=False, compare=False)
    noise: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        """Device holding the accumulators."""
        return self.xtx.device

    @property
    def n_regressors(self) -> int:
        """``P``."""
        return int(self.xtx.shape[0])

    @property
    def n_voxels(self) -> int:
        """``V``."""
        return int(self.xty.shape[1])

    @property
    def dof(self) -> int:
        """Residual degrees of freedom ``n_obs - n_nuisance - P``."""
        return self.n_obs - self.n_nuisance - self.n_regressors

    def add_(self, other: NormalEquations) -> NormalEquations:
        """Add another accumulator (e.g. from a parallel reader) in place; return self."""
        if other.names != self.names or other.n_voxels != self.n_voxels:
            raise DataError("normal equations: cannot add accumulators of different designs")
        self.xtx += other.xtx.to(self.device)
        self.xty += other.xty.to(self.device)
        self.yty += other.yty.to(self.device)
        self.x_ss += other.x_ss.to(self.device)
        self.n_obs += other.n_obs
        self.n_nuisance += other.n_nuisance
        return self


def new_normal_equations(
    names: Sequence[str],
    n_voxels: int,
    device: torch.device | str = "cpu",
    precision: str = "double",
) -> NormalEquations:
    """Return empty normal equations for ``len(names)`` regressors and ``n_voxels`` voxels.

    Parameters
    ----------
    names : sequence of str, length P
    n_voxels : int
        ``V``.
    device : torch.device or str
    precision : {"double", "mixed"}

    Returns
    -------
    NormalEquations
    """
    if precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if n_voxels < 1:
        raise DataError(f"normal equations: n_voxels must be >= 1, got {n_voxels}")
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise DataError("normal equations: regressor names are not unique")
    device = torch.device(device)
    P = len(names)
    return NormalEquations(
        xtx=torch.zeros((P, P), dtype=GRAM_DTYPE, device=device),
        xty=torch.zeros((P, n_voxels), dtype=GRAM_DTYPE, device=device),
        yty=torch.zeros((n_voxels,), dtype=GRAM_DTYPE, device=device),
        n_obs=0,
        n_nuisance=0,
        names=names,
        x_ss=torch.zeros((P,), dtype=GRAM_DTYPE, device=device),
        precision=precision,
    )


def nuisance_basis(nuisance: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the column space of a nuisance block (rank-revealing SVD).

    Parameters
    ----------
    nuisance : Tensor of shape (T, K), float64

    Returns
    -------
    Tensor of shape (T, r), float64, ``r = rank(nuisance)``.
    """
    T, K = nuisance.shape
    if K == 0:
        return nuisance.new_zeros((T, 0))
    U, s, _ = torch.linalg.svd(nuisance, full_matrices=False)
    tol = max(T, K) * torch.finfo(nuisance.dtype).eps * (s[0] if s.numel() else 0.0)
    r = int((s > tol).sum())
    return U[:, :r]


def column_indices(ne: NormalEquations, columns) -> list[int]:
    """Indices of regressors given by name or index (a name, an int, or a sequence)."""
    if isinstance(columns, (str, int, np.integer)):
        columns = [columns]
    out = []
    for c in columns:
        if isinstance(c, (int, np.integer)):
            if not 0 <= int(c) < ne.n_regressors:
                raise DataError(f"regressor index {c} out of range 0..{ne.n_regressors - 1}")
            out.append(int(c))
        else:
            try:
                out.append(ne.names.index(str(c)))
            except ValueError:
                raise DataError(f"regressor {c!r} is not in the design") from None
    if not out:
        raise DataError("no regressors selected")
    return out


def subset(ne: NormalEquations, columns) -> NormalEquations:
    """Normal equations of the model restricted to some regressors.

    The Gram and cross-product blocks of a subset of columns are sub-blocks of the full ones,
    so several models that share most regressors (e.g. one per latent space) are fitted from
    a single pass over the data.

    Parameters
    ----------
    ne : NormalEquations
    columns : sequence of str or int
        The regressors to keep, in the order wanted.

    Returns
    -------
    NormalEquations
        Views are not shared: the result owns its tensors.
    """
    idx = column_indices(ne, columns)
    if len(set(idx)) != len(idx):
        raise DataError("subset: a regressor is selected twice")
    it = torch.as_tensor(idx, device=ne.device)
    return NormalEquations(
        xtx=ne.xtx[it][:, it].clone(),
        xty=ne.xty[it].clone(),
        yty=ne.yty.clone(),
        n_obs=ne.n_obs,
        n_nuisance=ne.n_nuisance,
        names=[ne.names[i] for i in idx],
        x_ss=ne.x_ss[it].clone(),
        precision=ne.precision,
    )


def _collinear_message(names: Sequence[str], C: torch.Tensor) -> str:
    evals, evecs = torch.linalg.eigh(C)
    small = evals <= RCOND * evals[-1]
    involved: list[str] = []
    for k in torch.nonzero(small).flatten().tolist():
        v = evecs[:, k].abs()
        idx = torch.nonzero(v > 0.1 * v.max()).flatten().tolist()
        for i in idx:
            if names[i] not in involved:
                involved.append(names[i])
    shown = ", ".join(involved[:12]) + (" ..." if len(involved) > 12 else "")
    return f"design is singular: regressors {shown} are collinear after nuisance removal"


def factor_gram(
    xtx: torch.Tensor, x_ss: torch.Tensor, names: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factor of a unit-diagonal scaled Gram matrix, and the scales.

    Parameters
    ----------
    xtx : Tensor of shape (P, P), float64
    x_ss : Tensor of shape (P,), float64
        ``Σ x²`` of each regressor before nuisance removal.
    names : sequence of str, length P
        For the messages.

    Returns
    -------
    (L, s) : Tensors of shapes (P, P) and (P,)
        ``xtx = diag(s) L Lᵀ diag(s)``, ``L`` lower triangular.

    Raises
    ------
    DataError
        When the Gram matrix is singular; the message names the regressors involved.
    """
    d = torch.diagonal(xtx)
    absent = torch.nonzero(x_ss <= torch.finfo(GRAM_DTYPE).tiny).flatten().tolist()
    if absent:
        shown = ", ".join(names[i] for i in absent[:12])
        raise DataError(
            f"design is singular: regressor(s) {shown} are zero in every run; "
            "drop them from the design"
        )
    explained = torch.nonzero(d <= 1e-10 * x_ss).flatten().tolist()
    if explained:
        shown = ", ".join(names[i] for i in explained[:12])
        raise DataError(
            f"design is singular: regressor(s) {shown} are explained by the nuisance "
            "regressors (drift, intercept, confounds) in every run"
        )
    s = torch.sqrt(d)
    C = xtx / (s[:, None] * s[None, :])
    L, info = torch.linalg.cholesky_ex(C)
    if int(info) != 0:
        raise DataError(_collinear_message(names, C))
    # Cholesky can succeed on a numerically singular matrix: check the conditioning
    evals = torch.linalg.eigvalsh(C)
    if float(evals[0]) <= RCOND * float(evals[-1]):
        raise DataError(_collinear_message(names, C))
    return L, s


def cholesky_factor(ne: NormalEquations) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`factor_gram` of ``ne`` (``xtx = diag(s) L Lᵀ diag(s)``)."""
    if ne.n_obs == 0:
        raise DataError("GLM: no runs were accumulated")
    return factor_gram(ne.xtx, ne.x_ss, ne.names)


def solve(ne: NormalEquations) -> torch.Tensor:
    """Solve the normal equations by Cholesky.

    Parameters
    ----------
    ne : NormalEquations

    Returns
    -------
    betas : Tensor of shape (P, V), float64, on ``ne.device``.

    Raises
    ------
    DataError
        When the design is singular; the message names the collinear regressors.
    """
    L, s = cholesky_factor(ne)
    return torch.cholesky_solve(ne.xty / s[:, None], L).div_(s[:, None])  # 2 P×V temporaries


def contrast_weights(names: Sequence[str], contrast, device, what: str = "design") -> torch.Tensor:
    """Contrast weights over ``names`` from a name, a ``{name: weight}`` mapping or a vector.

    Parameters
    ----------
    names : sequence of str, length P
    contrast : str, mapping name -> weight, or array of shape (P,)
    device : torch.device or str
    what : str
        What ``names`` are, in messages ("design", "model").

    Returns
    -------
    Tensor of shape (P,), float64.
    """
    P = len(names)
    if isinstance(contrast, str):
        contrast = {contrast: 1.0}
    if isinstance(contrast, Mapping):
        c = torch.zeros(P, dtype=GRAM_DTYPE, device=device)
        for name, w in contrast.items():
            if name not in names:
                raise DataError(f"regressor {name!r} is not in the {what}")
            c[list(names).index(name)] = float(w)
        return c
    c = as_tensor(contrast, device, GRAM_DTYPE).flatten()
    if c.numel() != P:
        raise DataError(f"contrast has {c.numel()} weights, the {what} {P} columns")
    return c
