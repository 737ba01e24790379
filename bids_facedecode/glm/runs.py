"""One run made ready for the accumulation: its records, its whitened and residualised design.

A run enters :func:`bids_facedecode.glm.accumulate.accumulate_runs` as a :class:`RunData`
(design, data, nuisance, optional design factor, AR(1) coefficient); :func:`prepare_run` checks
it and turns it into a :class:`PreparedRun`: design and nuisance whitened with the run's AR(1)
filter (:mod:`bids_facedecode.glm.noise`), the design residualised on the nuisance basis, the
blocks of events that the factored product visits. The data themselves stay float32 and are
whitened and residualised chunk by chunk in the products (:mod:`bids_facedecode.glm.products`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ..device import GRAM_DTYPE
from ..errors import DataError
from ..tensors import as_tensor
from .noise import whiten_rows
from .normal_equations import NormalEquations, nuisance_basis

# a design factor (E, W) must reproduce its block of X to this relative (Frobenius) error
FACTOR_RTOL = 1e-9
# events per block of the product EᵀỸ (each block reads only the volumes its events touch)
EVENT_BLOCK = 16


class DesignFactor(NamedTuple):
    """The leading ``F`` columns of a run's design as a product, ``X[:, :F] == events @ weights``.

    Attributes
    ----------
    events : array or Tensor of shape (T, n)
        One column per event: the HRF response to it.
    weights : array or Tensor of shape (n, F)
        Each event's amplitude in each regressor (e.g. the latent vector of a training image).
    """

    events: np.ndarray | torch.Tensor
    weights: np.ndarray | torch.Tensor


class RunData(NamedTuple):
    """One run as :func:`~bids_facedecode.glm.accumulate.accumulate_runs` takes it.

    Attributes
    ----------
    shared : array or Tensor of shape (T, P)
        The run's shared design (``RunDesign.shared``).
    data : array or Tensor of shape (T, V), float32
        The run's BOLD data (time by voxel).
    nuisance : array or Tensor of shape (T, K)
        The run's own nuisance columns (drift, intercept, confounds).
    factor : DesignFactor or (events, weights), optional
        A factor of the leading columns of ``shared`` (:class:`DesignFactor`).
    rho : float
        AR(1) coefficient of the run's noise (0: white noise).
    """

    shared: np.ndarray | torch.Tensor
    data: np.ndarray | torch.Tensor
    nuisance: np.ndarray | torch.Tensor
    factor: DesignFactor | tuple | None = None
    rho: float = 0.0


class EventBlock(NamedTuple):
    """Events ``first:stop`` of a run are zero outside its volumes ``t0:t1`` (``t0 == t1``:
    zero everywhere)."""

    first: int
    stop: int
    t0: int
    t1: int


class RunGroup(NamedTuple):
    """Consecutive prepared runs of a batch that share an accumulator.

    Attributes
    ----------
    target : NormalEquations
    r0, r1 : int
        Their rows (volumes) in the stacked batch.
    e0, e1 : int
        Their events in the stacked event responses (factored designs).
    """

    target: NormalEquations
    r0: int
    r1: int
    e0: int
    e1: int


@dataclass
class PreparedRun:
    """A run whitened and residualised on its nuisance, ready for the products.

    Attributes
    ----------
    Xt : Tensor of shape (T, P), float64
        The design, residualised on the nuisance.
    Q : Tensor of shape (T, r), float64
        Orthonormal nuisance basis.
    Y : Tensor of shape (T, V), float32
        The data on the device (not yet whitened: chunk by chunk in the products).
    one_res : Tensor of shape (T,), float64
        The constant, residualised on the nuisance.
    const_in_nuisance : bool
        The nuisance spans the constant (an intercept).
    x_ss : Tensor of shape (P,), float64
        ``Σ x²`` before nuisance removal.
    events, weights : Tensors of shapes (T, n) and (n, F), float64, or None
        ``X[:, :F] = events @ weights``.
    blocks : list of EventBlock
        See :func:`event_blocks`.
    rho : float
        AR(1) coefficient.
    """

    Xt: torch.Tensor
    Q: torch.Tensor
    Y: torch.Tensor
    one_res: torch.Tensor
    const_in_nuisance: bool
    x_ss: torch.Tensor
    events: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    blocks: list[EventBlock] = field(default_factory=list)
    rho: float = 0.0


def event_blocks(events: torch.Tensor) -> list[EventBlock]:
    """Blocks of :data:`EVENT_BLOCK` consecutive events and the volumes they touch.

    An event's HRF response lasts ~30 s, a few volumes of a run: computing ``EᵀỸ`` block by
    block over consecutive events skips the zeros.

    Parameters
    ----------
    events : Tensor of shape (T, n)

    Returns
    -------
    list of EventBlock
    """
    nz = events != 0
    blocks = []
    for j0 in range(0, events.shape[1], EVENT_BLOCK):
        j1 = min(events.shape[1], j0 + EVENT_BLOCK)
        rows = torch.nonzero(nz[:, j0:j1].any(dim=1)).flatten()
        if rows.numel():
            blocks.append(EventBlock(j0, j1, int(rows[0]), int(rows[-1]) + 1))
        else:
            blocks.append(EventBlock(j0, j1, 0, 0))  # events outside the run: zero responses
    return blocks


def prepare_run(ne: NormalEquations, run: RunData) -> PreparedRun:
    """Check one run against ``ne``, whiten it with its AR(1) filter and residualise the design.

    Parameters
    ----------
    ne : NormalEquations
        The accumulator (its regressors, voxels and device).
    run : RunData

    Returns
    -------
    PreparedRun

    Raises
    ------
    DataError
        When a shape does not match, the design or nuisance is not finite, the factor does not
        reproduce the design, or ``rho`` is not in (-1, 1).
    """
    dev = ne.device
    X = as_tensor(run.shared, dev, GRAM_DTYPE)
    N = as_tensor(run.nuisance, dev, GRAM_DTYPE)
    Y = run.data
    if X.ndim != 2 or X.shape[1] != ne.n_regressors:
        raise DataError(
            f"accumulate_run: design has shape {tuple(X.shape)}, expected (T, {ne.n_regressors})"
        )
    T = X.shape[0]
    if Y.ndim != 2 or Y.shape[0] != T or Y.shape[1] != ne.n_voxels:
        raise DataError(
            f"accumulate_run: data have shape {tuple(Y.shape)}, expected ({T}, {ne.n_voxels})"
        )
    if N.ndim != 2 or N.shape[0] != T:
        raise DataError(f"accumulate_run: nuisance has shape {tuple(N.shape)}, expected ({T}, K)")
    if not bool(torch.isfinite(X).all()) or not bool(torch.isfinite(N).all()):
        raise DataError("accumulate_run: design or nuisance contains NaN/inf")
    events = weights = None
    if run.factor is not None:
        events = as_tensor(run.factor[0], dev, GRAM_DTYPE)
        weights = as_tensor(run.factor[1], dev, GRAM_DTYPE)
        n = events.shape[1] if events.ndim == 2 else -1
        if (events.ndim != 2 or events.shape[0] != T or weights.ndim != 2
                or weights.shape[0] != n or not 0 < weights.shape[1] <= ne.n_regressors):
            raise DataError(
                f"accumulate_run: design factor of shapes {tuple(events.shape)} and "
                f"{tuple(weights.shape)} does not match a ({T}, {ne.n_regressors}) design"
            )
        F = weights.shape[1]
        err = float(torch.linalg.matrix_norm(events @ weights - X[:, :F]))
        if err > FACTOR_RTOL * max(float(torch.linalg.matrix_norm(X[:, :F])), 1e-300):
            raise DataError("accumulate_run: the design factor does not reproduce the design "
                            f"(relative error {err / float(torch.linalg.matrix_norm(X[:, :F])):.1e})")
    rho = float(run.rho)
    if not -1.0 < rho < 1.0:
        raise DataError(f"accumulate_run: AR(1) coefficient {rho} is not in (-1, 1)")
    one = torch.ones(T, dtype=GRAM_DTYPE, device=dev)
    if rho:
        # the whitened model: W X, W N (and W E: still zero far from its events); the data are
        # whitened chunk by chunk in the product
        X, N, one = whiten_rows(X, rho), whiten_rows(N, rho), whiten_rows(one, rho)
        if events is not None:
            events = whiten_rows(events, rho)
    Q = nuisance_basis(N)
    Xt = X - Q @ (Q.T @ X)
    one_res = one - Q @ (Q.T @ one)
    const_in = float(torch.linalg.vector_norm(one_res)) <= 1e-8 * float(T) ** 0.5
    # the run's data travel once, as float32 (zero-copy for a CPU numpy array)
    blocks = event_blocks(events) if events is not None else []
    return PreparedRun(Xt, Q, as_tensor(Y, dev), one_res, const_in, (X * X).sum(dim=0),
                       events, weights, blocks, rho)


def factored_width(prepared: Sequence[PreparedRun], n_regressors: int) -> int:
    """Width ``F`` of the factored leading block when it saves arithmetic, else 0.

    Dense: ``P·R`` multiply-adds per voxel. Factored: the event responses ``EᵀỸ`` (events ×
    the volumes they touch, see :func:`event_blocks`), ``F·N`` (weights × responses) and
    ``(P−F)·R`` (the other columns).

    Parameters
    ----------
    prepared : sequence of PreparedRun
        The runs of one batch.
    n_regressors : int
        ``P``.

    Returns
    -------
    int
    """
    if any(p.weights is None for p in prepared):
        return 0
    widths = {int(p.weights.shape[1]) for p in prepared}
    if len(widths) != 1:
        return 0
    F = widths.pop()
    R = sum(int(p.Xt.shape[0]) for p in prepared)
    N = sum(int(p.events.shape[1]) for p in prepared)
    responses = sum((b.stop - b.first) * (b.t1 - b.t0) for p in prepared for b in p.blocks)
    factored = responses + F * N + (n_regressors - F) * R
    return F if factored < n_regressors * R else 0
