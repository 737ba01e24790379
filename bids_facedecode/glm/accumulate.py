"""Streamed accumulation of the joint GLM's normal equations, run by run.

Each run is residualised on its own nuisance columns (Frisch–Waugh–Lovell, see
:mod:`bids_facedecode.glm.normal_equations`) and added to a
:class:`~bids_facedecode.glm.normal_equations.NormalEquations`; runs are batched so that one
tall product per voxel chunk updates the ``P × V`` accumulator
(:mod:`bids_facedecode.glm.products`). A run's design may come with a factor
``X[:, :F] = E W`` (HRF response per training trial × the trials' latent vectors), which turns
that block of ``XᵀỸ`` into ``Wᵀ(EᵀỸ)``. :func:`bids_facedecode.glm.memory.plan_stream` sizes
batches and voxel chunks from ``--mem``. Everything runs unchanged on CPU and CUDA tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..device import DATA_DTYPE, GRAM_DTYPE
from ..errors import DataError
from .normal_equations import NormalEquations
from .products import fused_products, stacked_products
from .runs import DesignFactor, RunData, RunGroup, factored_width, prepare_run


def accumulate_run(
    ne: NormalEquations,
    X_shared,
    Y,
    nuisance,
    voxel_chunk: int | None = None,
    factor: DesignFactor | tuple | None = None,
    rho: float = 0.0,
) -> None:
    """Add one run to the normal equations, after projecting out its nuisance columns.

    Parameters
    ----------
    ne : NormalEquations
        Updated in place.
    X_shared : array or Tensor of shape (T, P)
        The run's shared design (``RunDesign.shared``).
    Y : array or Tensor of shape (T, V), float32
        The run's BOLD data (time by voxel). On a CUDA device the whole run is copied to
        the GPU once (``T * V * 4`` bytes); the caller may pass a GPU tensor directly.
    nuisance : array or Tensor of shape (T, K)
        The run's own nuisance columns (drift, intercept, confounds).
    voxel_chunk : int, optional
        Process this many voxels at a time (see :func:`~bids_facedecode.glm.memory.plan_stream`);
        all voxels at once when omitted.
    factor : DesignFactor or (E, W), optional
        ``X_shared[:, :F] == E @ W`` (see :func:`accumulate_runs`), for a product with less
        arithmetic.
    rho : float
        AR(1) coefficient of the run's noise: design, data and nuisance are whitened with its
        filter (:mod:`bids_facedecode.glm.noise`) before the nuisance is projected out; 0 is the
        white-noise (OLS) model.
    """
    accumulate_runs(ne, [RunData(X_shared, Y, nuisance, factor, rho)], voxel_chunk=voxel_chunk)


def _targets(ne: NormalEquations | Sequence[NormalEquations], n_runs: int) -> list[NormalEquations]:
    """The accumulator of each run (one for all, or one per run, all of the same design)."""
    if isinstance(ne, NormalEquations):
        return [ne] * n_runs
    targets = list(ne)
    if len(targets) != n_runs:
        raise DataError(f"accumulate_runs: {len(targets)} accumulators for {n_runs} runs")
    first = targets[0]
    for t in targets[1:]:
        if (t.names != first.names or t.n_voxels != first.n_voxels or t.device != first.device
                or t.precision != first.precision):
            raise DataError("accumulate_runs: the accumulators of a batch differ in design")
    return targets


def accumulate_runs(
    ne: NormalEquations | Sequence[NormalEquations],
    runs: Sequence[RunData | tuple],
    voxel_chunk: int | None = None,
) -> None:
    """Add several runs to the normal equations with one ``X̃ᵀỸ`` product per voxel chunk.

    Each run is residualised on its own nuisance columns (Frisch–Waugh–Lovell), then the runs
    are stacked: ``Σ_runs X̃ᵣᵀỸᵣ = [X̃₁; X̃₂; …]ᵀ[Ỹ₁; Ỹ₂; …]``. One tall product instead of one
    product per run keeps the ``P × V`` accumulator out of the inner loop (a per-run update
    of a short run is bound by memory traffic, not arithmetic).

    **Factored designs.** A run may come with a factor ``(E, W)`` of its leading ``F`` columns,
    ``X[:, :F] = E @ W`` (``E``: one column per event, the HRF response to it; ``W``: the
    event's amplitude in each regressor, e.g. the latent vector of a training image). Since
    ``X̃ᵀỸ = XᵀỸ`` (the projection is symmetric and idempotent), the block is computed as
    ``Wᵀ(EᵀỸ)``, which costs less than ``XᵀỸ`` when a run has fewer events than volumes and
    ``F ≈ P``. The factor is checked against ``X`` and used when it saves work
    (:func:`~bids_facedecode.glm.runs.factored_width`).

    **Noise model.** A run with an AR(1) coefficient ``rho`` enters as its whitened model
    (:mod:`bids_facedecode.glm.noise`): ``W X``, ``W E`` and ``W N`` here, ``W Y`` one voxel chunk
    at a time after the voxel means are removed (``W 1`` lies in the span of ``W N`` when ``N``
    holds an intercept, so the centring is still exact).

    With ``precision="mixed"`` the product is float32 (as fast as the hardware allows) and is
    added to the float64 accumulator. To keep float32 accurate, each run's voxel means are
    first subtracted (exact in float32: ``y`` and its mean are within a factor of two), so the
    product only sees residual-sized values (``tests/test_streaming.py`` bounds the relative
    error against float64).

    Parameters
    ----------
    ne : NormalEquations or sequence of NormalEquations
        Updated in place. A sequence gives each run its own accumulator (one per run, e.g. the
        two halves of a split-half analysis); runs that share an accumulator share a product.
    runs : sequence of RunData (or tuples ``(X_shared, Y, nuisance[, factor[, rho]])``)
        As in :func:`accumulate_run`: ``(T_r, P)``, ``(T_r, V)`` float32, ``(T_r, K_r)``;
        ``factor`` is None or ``(E, W)`` of shapes ``(T_r, n_r)`` and ``(n_r, F)``; ``rho``
        the run's AR(1) coefficient (0: white noise).
    voxel_chunk : int, optional
        Voxels per step (see :func:`~bids_facedecode.glm.memory.plan_stream`); all voxels at
        once when omitted.
    """
    if not runs:
        return
    targets = _targets(ne, len(runs))
    ne = targets[0]
    # runs sharing an accumulator are stacked next to each other (first-appearance order)
    slot = {}
    for t in targets:
        slot.setdefault(id(t), len(slot))
    order = sorted(range(len(runs)), key=lambda i: slot[id(targets[i])])
    prepared = [prepare_run(ne, RunData(*runs[i])) for i in order]
    targets = [targets[i] for i in order]
    groups: list[RunGroup] = []
    r = n = 0
    for t, p in zip(targets, prepared, strict=True):
        T = int(p.Xt.shape[0])
        m = int(p.events.shape[1]) if p.events is not None else 0
        if groups and groups[-1].target is t:
            groups[-1] = groups[-1]._replace(r1=r + T, e1=n + m)
        else:
            groups.append(RunGroup(t, r, r + T, n, n + m))
        r, n = r + T, n + m
        t.xtx += p.Xt.T @ p.Xt
    cdt = GRAM_DTYPE if ne.precision == "double" else DATA_DTYPE
    F = factored_width(prepared, ne.n_regressors)
    if F and cdt == DATA_DTYPE and all(p.const_in_nuisance for p in prepared):
        fused_products(ne, prepared, groups, F, voxel_chunk)
    else:
        Xb = torch.cat([p.Xt for p in prepared]).to(cdt)  # (R, P)
        stacked_products(ne, prepared, groups, F, Xb, cdt, voxel_chunk)
    for t, p in zip(targets, prepared, strict=True):
        t.x_ss += p.x_ss
        t.n_obs += int(p.Xt.shape[0])
        t.n_nuisance += int(p.Q.shape[1])
