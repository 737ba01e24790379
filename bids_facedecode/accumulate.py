"""Streamed accumulation of the joint GLM's normal equations, run by run (issue 4).

Each run is residualised on its own nuisance columns (Frisch–Waugh–Lovell, see
:mod:`bids_facedecode.glm`) and added to :class:`~bids_facedecode.glm.NormalEquations`; runs are
batched so that one tall product per voxel chunk updates the ``P × V`` accumulator. A run's
design may come with a factor ``X[:, :F] = E W`` (HRF response per training trial × the trials'
latent vectors), which turns that block of ``XᵀỸ`` into ``Wᵀ(EᵀỸ)``: ~0.4× the arithmetic for
a real subject. :func:`plan_stream` sizes batches and voxel chunks from ``--mem``.
Everything runs unchanged on CPU and CUDA tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .device import DATA_DTYPE, GRAM_DTYPE
from .errors import DataError, UsageError
from .glm import NormalEquations, _as_tensor, nuisance_basis
from .noise import whiten_rows, whiten_rows_into

# a design factor (E, W) must reproduce its block of X to this relative (Frobenius) error
FACTOR_RTOL = 1e-9


def accumulate_run(
    ne: NormalEquations,
    X_shared,
    Y,
    nuisance,
    voxel_chunk: int | None = None,
    factor: tuple | None = None,
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
        Process this many voxels at a time (see :func:`plan_stream`); all voxels at once when
        omitted.
    factor : (E, W), optional
        ``X_shared[:, :F] == E @ W`` (see :func:`accumulate_runs`), for a faster product.
    rho : float
        AR(1) coefficient of the run's noise: design, data and nuisance are whitened with its
        filter (:mod:`bids_facedecode.noise`) before the nuisance is projected out; 0 is the
        white-noise (OLS) model.
    """
    accumulate_runs(ne, [(X_shared, Y, nuisance, factor, rho)], voxel_chunk=voxel_chunk)


def _buffer(ne: NormalEquations, name: str, shape: tuple[int, int], dtype: torch.dtype):
    """A ``shape`` view of a buffer kept in ``ne.workspace`` (grown when too small)."""
    n = int(shape[0]) * int(shape[1])
    buf = ne.workspace.get(name)
    if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != ne.device:
        ne.workspace.pop(name, None)
        buf = torch.empty(n, dtype=dtype, device=ne.device)
        ne.workspace[name] = buf
    return buf[:n].view(shape)


# rows of the float64 staging buffer of _add_float32
_STAGE_ROWS = 16


def _add_float32(ne: NormalEquations, dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst += src`` for a float64 ``dst`` and a float32 ``src`` of shape (P, c).

    A mixed-dtype in-place add makes a float64 copy of all of ``src`` first (a fresh
    ``8·P·c``-byte block, page-faulted in on every call: 5–10× slower than the add itself);
    converting a few rows at a time into a reused buffer avoids it.
    """
    rows, c = src.shape
    stage = _buffer(ne, "stage", (min(rows, _STAGE_ROWS), c), dst.dtype)
    for r0 in range(0, rows, _STAGE_ROWS):
        r1 = min(rows, r0 + _STAGE_ROWS)
        s = stage[: r1 - r0]
        s.copy_(src[r0:r1])
        dst[r0:r1].add_(s)


def _add_sum_of_squares(ne: NormalEquations, start: int, ssq: torch.Tensor) -> None:
    """``yty[start:start + len(ssq)] += ssq`` (float64, clamped at 0), refusing NaN/inf data."""
    if not bool(torch.isfinite(ssq).all()):
        bad = start + int(torch.nonzero(~torch.isfinite(ssq))[0])
        raise DataError(f"accumulate_run: BOLD data contain NaN/inf (voxel {bad})")
    ne.yty[start : start + ssq.numel()] += ssq.clamp_(min=0.0)


@dataclass
class _PreparedRun:
    Xt: torch.Tensor          # (T, P) float64, residualised on the nuisance
    Q: torch.Tensor           # (T, r) float64, orthonormal nuisance basis
    Y: torch.Tensor           # (T, V) on the device, float32
    one_res: torch.Tensor     # (T,) float64, the constant residualised on the nuisance
    const_in_nuisance: bool   # the nuisance spans the constant (an intercept)
    x_ss: torch.Tensor        # (P,) float64, Σ x² before nuisance removal
    events: torch.Tensor | None = None   # (T, n) float64: X[:, :F] = events @ weights
    weights: torch.Tensor | None = None  # (n, F) float64
    blocks: list[tuple[int, int, int, int]] = field(default_factory=list)  # see _event_blocks
    rho: float = 0.0          # AR(1) coefficient: Y is whitened chunk by chunk, the rest here


# events per block of the product EᵀỸ (each block reads only the volumes its events touch)
EVENT_BLOCK = 16


def _event_blocks(events: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Blocks ``(j0, j1, t0, t1)``: events ``j0:j1`` are zero outside volumes ``t0:t1``
    (``t0 == t1`` when they are zero everywhere).

    An event's HRF response lasts ~30 s, a few volumes of a run: computing ``EᵀỸ`` block by
    block over consecutive events skips the zeros (several times less arithmetic than one
    dense product for a real run).
    """
    nz = events != 0
    blocks = []
    for j0 in range(0, events.shape[1], EVENT_BLOCK):
        j1 = min(events.shape[1], j0 + EVENT_BLOCK)
        rows = torch.nonzero(nz[:, j0:j1].any(dim=1)).flatten()
        if rows.numel():
            blocks.append((j0, j1, int(rows[0]), int(rows[-1]) + 1))
        else:
            blocks.append((j0, j1, 0, 0))  # events outside the run: zero responses
    return blocks


def _prepare_run(ne: NormalEquations, X_shared, Y, nuisance, factor=None,
                 rho: float = 0.0) -> _PreparedRun:
    dev = ne.device
    X = _as_tensor(X_shared, dev, GRAM_DTYPE)
    N = _as_tensor(nuisance, dev, GRAM_DTYPE)
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
    if factor is not None:
        events = _as_tensor(factor[0], dev, GRAM_DTYPE)
        weights = _as_tensor(factor[1], dev, GRAM_DTYPE)
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
    rho = float(rho)
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
    blocks = _event_blocks(events) if events is not None else []
    return _PreparedRun(Xt, Q, _as_tensor(Y, dev), one_res, const_in, (X * X).sum(dim=0),
                        events, weights, blocks, rho)


def _use_factor(prepared: Sequence[_PreparedRun], n_regressors: int) -> int:
    """Width ``F`` of the factored leading block when it saves arithmetic, else 0.

    Dense: ``P·R`` multiply-adds per voxel. Factored: the event responses ``EᵀỸ`` (events ×
    the volumes they touch, see :func:`_event_blocks`), ``F·N`` (weights × responses) and
    ``(P−F)·R`` (the other columns).
    """
    if any(p.weights is None for p in prepared):
        return 0
    widths = {int(p.weights.shape[1]) for p in prepared}
    if len(widths) != 1:
        return 0
    F = widths.pop()
    R = sum(int(p.Xt.shape[0]) for p in prepared)
    N = sum(int(p.events.shape[1]) for p in prepared)
    responses = sum((j1 - j0) * (t1 - t0) for p in prepared for j0, j1, t0, t1 in p.blocks)
    factored = responses + F * N + (n_regressors - F) * R
    return F if factored < n_regressors * R else 0


def _targets(ne, n_runs: int) -> list[NormalEquations]:
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
    runs: Sequence[tuple],
    voxel_chunk: int | None = None,
) -> None:
    """Add several runs to the normal equations with one ``X̃ᵀỸ`` product per voxel chunk.

    Each run is residualised on its own nuisance columns (Frisch–Waugh–Lovell), then the runs
    are stacked: ``Σ_runs X̃ᵣᵀỸᵣ = [X̃₁; X̃₂; …]ᵀ[Ỹ₁; Ỹ₂; …]``. One tall product instead of one
    product per run keeps the ``P × V`` accumulator out of the inner loop (a per-run update
    of a 200-volume run is bound by memory traffic, not arithmetic), so the accumulation runs
    at the speed of a bare matrix product.

    **Factored designs.** A run may come with a factor ``(E, W)`` of its leading ``F`` columns,
    ``X[:, :F] = E @ W`` (``E``: one column per event, the HRF response to it; ``W``: the
    event's amplitude in each regressor, e.g. the latent vector of a training image). Since
    ``X̃ᵀỸ = XᵀỸ`` (the projection is symmetric and idempotent), the block is computed as
    ``Wᵀ(EᵀỸ)``: with ~0.4 training trials per volume and ``F ≈ P`` this is about half the
    arithmetic of ``XᵀỸ``. The factor is checked against ``X`` and used when it saves work.

    **Noise model.** A run with an AR(1) coefficient ``rho`` enters as its whitened model
    (:mod:`bids_facedecode.noise`): ``W X``, ``W E`` and ``W N`` here, ``W Y`` one voxel chunk
    at a time after the voxel means are removed (``W 1`` lies in the span of ``W N`` when ``N``
    holds an intercept, so the centring is still exact).

    With ``precision="mixed"`` the product is float32 (as fast as the hardware allows) and is
    added to the float64 accumulator. To keep float32 accurate, each run's voxel means are
    first subtracted (exact in float32: ``y`` and its mean are within a factor of two), so the
    product only sees residual-sized values; relative error ~1e-7.

    Parameters
    ----------
    ne : NormalEquations or sequence of NormalEquations
        Updated in place. A sequence gives each run its own accumulator (one per run, e.g. the
        two halves of a split-half analysis); runs that share an accumulator share a product.
    runs : sequence of (X_shared, Y, nuisance[, factor[, rho]])
        As in :func:`accumulate_run`: ``(T_r, P)``, ``(T_r, V)`` float32, ``(T_r, K_r)``;
        ``factor`` is None or ``(E, W)`` of shapes ``(T_r, n_r)`` and ``(n_r, F)``; ``rho``
        the run's AR(1) coefficient (0: white noise).
    voxel_chunk : int, optional
        Voxels per step (see :func:`plan_stream`); all voxels at once when omitted.
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
    prepared = [_prepare_run(ne, *runs[i]) for i in order]
    targets = [targets[i] for i in order]
    groups: list[tuple[NormalEquations, int, int, int, int]] = []  # (ne, r0, r1, n0, n1)
    r = n = 0
    for t, p in zip(targets, prepared, strict=True):
        T = int(p.Xt.shape[0])
        m = int(p.events.shape[1]) if p.events is not None else 0
        if groups and groups[-1][0] is t:
            groups[-1] = (t, groups[-1][1], r + T, groups[-1][3], n + m)
        else:
            groups.append((t, r, r + T, n, n + m))
        r, n = r + T, n + m
        t.xtx += p.Xt.T @ p.Xt
    cdt = GRAM_DTYPE if ne.precision == "double" else DATA_DTYPE
    F = _use_factor(prepared, ne.n_regressors)
    if F and cdt == DATA_DTYPE and all(p.const_in_nuisance for p in prepared):
        _accumulate_fused(ne, prepared, groups, F, voxel_chunk)
    else:
        Xb = torch.cat([p.Xt for p in prepared]).to(cdt)  # (R, P)
        _accumulate_stacked(ne, prepared, groups, F, Xb, cdt, voxel_chunk)
    for t, p in zip(targets, prepared, strict=True):
        t.x_ss += p.x_ss
        t.n_obs += int(p.Xt.shape[0])
        t.n_nuisance += int(p.Q.shape[1])


def _accumulate_stacked(ne: NormalEquations, prepared: Sequence[_PreparedRun], groups: list,
                        F: int, Xb: torch.Tensor, cdt: torch.dtype,
                        voxel_chunk: int | None) -> None:
    """Residualise the batch into one stacked buffer, then one product per accumulator."""
    if F:
        Xtail = Xb[:, F:]
        Wb = torch.cat([p.weights for p in prepared]).to(cdt)  # (N, F)
        Es = [p.events.to(cdt) for p in prepared]
    Qs = [p.Q.to(cdt) for p in prepared]
    R = Xb.shape[0]
    V = ne.n_voxels
    step = V if not voxel_chunk else max(1, int(voxel_chunk))
    for start in range(0, V, step):
        stop = min(V, start + step)
        Ybc = _buffer(ne, "batch", (R, stop - start), cdt)  # contiguous, reused
        r0 = 0
        shifts = []
        for p, Qc in zip(prepared, Qs, strict=True):
            T = p.Xt.shape[0]
            blk = Ybc[r0 : r0 + T]
            src = p.Y[:, start:stop]
            if cdt == DATA_DTYPE:
                # centre: y - mean(y) is exact in float32, the mean lies in the nuisance span
                mu = src.mean(dim=0)
                if p.rho:
                    tmp = _buffer(ne, "whiten", (T, stop - start), cdt)
                    torch.sub(src, mu, out=tmp)
                    whiten_rows_into(tmp, p.rho, blk)
                else:
                    torch.sub(src, mu, out=blk)
                shifts.append(mu)
            elif p.rho:
                tmp = _buffer(ne, "whiten", (T, stop - start), cdt)
                tmp.copy_(src)
                whiten_rows_into(tmp, p.rho, blk)
            else:
                blk.copy_(src)
            if Qc.shape[1]:
                blk.addmm_(Qc, Qc.T @ blk, alpha=-1.0)
            if cdt == DATA_DTYPE and not p.const_in_nuisance:
                # no intercept in the model: the mean is data, put its residual part back
                blk.addr_(p.one_res.to(cdt), shifts[-1])
            r0 += T
        if F:
            # event responses EᵀỸ of every run, then Wᵀ(EᵀỸ) per accumulator
            B = _buffer(ne, "events", (Wb.shape[0], stop - start), cdt)
            r0 = n0 = 0
            for p, E in zip(prepared, Es, strict=True):
                T, m = E.shape
                for j0, j1, t0, t1 in p.blocks:
                    if t1 > t0:
                        torch.mm(E[t0:t1, j0:j1].T, Ybc[r0 + t0 : r0 + t1],
                                 out=B[n0 + j0 : n0 + j1])
                    else:
                        B[n0 + j0 : n0 + j1].zero_()
                r0, n0 = r0 + T, n0 + m
        for t, g0, g1, e0, e1 in groups:
            if cdt == GRAM_DTYPE and not F:
                t.xty[:, start:stop].addmm_(Xb[g0:g1].T, Ybc[g0:g1])
            elif cdt == GRAM_DTYPE:
                t.xty[:F, start:stop].addmm_(Wb[e0:e1].T, B[e0:e1])
                t.xty[F:, start:stop].addmm_(Xtail[g0:g1].T, Ybc[g0:g1])
            else:
                out = _buffer(ne, "product", (ne.n_regressors, stop - start), cdt)
                if F:
                    torch.mm(Wb[e0:e1].T, B[e0:e1], out=out[:F])
                    torch.mm(Xtail[g0:g1].T, Ybc[g0:g1], out=out[F:])
                else:
                    torch.mm(Xb[g0:g1].T, Ybc[g0:g1], out=out)
                _add_float32(ne, t.xty[:, start:stop], out)
        Ybc.square_()  # Yb is free after the products
        for t, g0, g1, _, _ in groups:
            _add_sum_of_squares(t, start, Ybc[g0:g1].sum(dim=0).to(GRAM_DTYPE))


def _accumulate_fused(ne: NormalEquations, prepared: Sequence[_PreparedRun], groups: list,
                      F: int, voxel_chunk: int | None) -> None:
    """Mixed precision, factored design, intercept in every run's nuisance: fewer data passes.

    Only the voxel means are removed from the data (exact in float32); the nuisance projection
    is applied to the small side instead, as ``X̃ᵀỸ = X̃ᵀY`` and
    ``EᵀỸ = EᵀY − (EᵀQ)(QᵀY)``, ``‖ỹ‖² = ‖y‖² − ‖Qᵀy‖²`` (with a noise model, ``y`` is the
    whitened centred chunk and ``X̃``, ``E``, ``Q`` come from the whitened design). Per run, one product
    ``[X̃_tail | Q]ᵀ Y`` and the event responses ``EᵀY`` block by block over the volumes each
    block of events touches (:func:`_event_blocks`: about half the arithmetic of a dense
    ``[E | X̃_tail | Q]ᵀ Y`` for a real run).
    """
    cdt = DATA_DTYPE
    P = ne.n_regressors
    V = ne.n_voxels
    step = V if not voxel_chunk else max(1, int(voxel_chunk))
    Wb = torch.cat([p.weights for p in prepared]).to(cdt)  # (N, F)
    sides, EQs, Es = [], [], []
    for p in prepared:
        sides.append(torch.cat([p.Xt[:, F:], p.Q], dim=1).to(cdt))
        EQs.append((p.events.T @ p.Q).to(cdt))
        Es.append(p.events.to(cdt))
    N = int(Wb.shape[0])
    width = max(int(a.shape[1]) for a in sides)
    rows = [0]
    for p in prepared:
        rows.append(rows[-1] + int(p.Xt.shape[0]))
    for start in range(0, V, step):
        stop = min(V, start + step)
        c = stop - start
        longest = max(int(p.Xt.shape[0]) for p in prepared)
        Yc = _buffer(ne, "centred", (longest, c), cdt)
        Yw = _buffer(ne, "whiten", (longest, c), cdt) if any(p.rho for p in prepared) else None
        B = _buffer(ne, "events", (N, c), cdt)
        G = _buffer(ne, "side", (width, c), cdt)
        out = _buffer(ne, "product", (P, c), cdt)
        k = 0
        for t, _g0, g1, e0, e1 in groups:
            out[F:].zero_()
            ssq = torch.zeros(c, dtype=GRAM_DTYPE, device=ne.device)
            n0 = e0
            while k < len(prepared) and rows[k] < g1:
                p, A, EQ, E = prepared[k], sides[k], EQs[k], Es[k]
                T, n = int(p.Xt.shape[0]), int(p.events.shape[1])
                y = Yc[:T]
                src = p.Y[:, start:stop]
                torch.sub(src, src.mean(dim=0), out=y)
                if p.rho:
                    whiten_rows_into(y, p.rho, Yw[:T])
                    y = Yw[:T]
                g = G[: A.shape[1]]
                torch.mm(A.T, y, out=g)
                gq = g[P - F :]
                for j0, j1, t0, t1 in p.blocks:
                    if t1 > t0:
                        torch.mm(E[t0:t1, j0:j1].T, y[t0:t1], out=B[n0 + j0 : n0 + j1])
                    else:
                        B[n0 + j0 : n0 + j1].zero_()
                B[n0 : n0 + n].addmm_(EQ, gq, alpha=-1.0)
                out[F:] += g[: P - F]
                ssq -= gq.square().sum(dim=0).to(GRAM_DTYPE)
                ssq += y.square_().sum(dim=0).to(GRAM_DTYPE)  # y is free after the product
                n0 += n
                k += 1
            torch.mm(Wb[e0:e1].T, B[e0:e1], out=out[:F])
            _add_float32(ne, t.xty[:, start:stop], out)
            _add_sum_of_squares(t, start, ssq)


def stream_memory(
    n_regressors: int,
    n_voxels: int,
    batch_rows: int,
    voxel_chunk: int,
    precision: str = "mixed",
    held_rows: int = 0,
    accumulators: int = 1,
    reader_bytes: int = 0,
    whitened_rows: int = 0,
) -> int:
    """Peak bytes of a streamed fit with :func:`accumulate_runs` (see :func:`plan_stream`).

    Counts the float64 accumulators (``P·V + P² + 2V`` each), the float32 data of the runs
    waiting in the batch (``batch_rows·V``) and of runs read ahead (``held_rows·V``), the
    stacked design, the chunk buffer and the event responses of a factored design
    (``batch_rows·(P + 2·chunk)`` of the product dtype), the float32 product of a chunk
    (``P·chunk``, mixed precision) and, after the pass, the whitened cross-products of
    :func:`bids_facedecode.glmstats.whiten` (one more ``P·V`` float64 array).

    Parameters
    ----------
    n_regressors, n_voxels : int
        ``P`` and ``V``.
    batch_rows : int
        Most volumes accumulated in one product.
    voxel_chunk : int
    precision : {"double", "mixed"}
    held_rows : int
        Volumes of runs read ahead of the batch (prefetch).
    accumulators : int
        Normal equations filled in the same pass (the total, and the groups of the split
        halves and CV folds: ``workflow.folds.stream_plan``).
    reader_bytes : int
        Held by the readers during the pass (their decompression buffers).
    whitened_rows : int
        Volumes of the longest run when the data are whitened (an AR(1) noise model: one more
        buffer of a chunk of that run, in the product dtype).

    Returns
    -------
    int
    """
    P, V, R = int(n_regressors), int(n_voxels), int(batch_rows)
    c = min(int(voxel_chunk), V)
    b = 8 if precision == "double" else 4
    a = max(1, int(accumulators))
    accumulate = (8 * a * (P * V + P * P + 2 * V) + 4 * (R + int(held_rows)) * V
                  + b * R * (P + 2 * c) + (4 * P * c if precision == "mixed" else 0)
                  + int(reader_bytes) + b * int(whitened_rows) * c)
    return max(accumulate, 8 * (a + 1) * P * V + 4 * int(held_rows) * V)


def plan_stream(
    mem_bytes: int,
    n_regressors: int,
    n_voxels: int,
    n_scans: int,
    precision: str = "mixed",
    held_rows: int = 0,
    target_rows: int = 2048,
    accumulators: int = 1,
    reader_bytes: int = 0,
    whitened_rows: int = 0,
) -> tuple[int, int]:
    """Batch height and voxel chunk of a streamed fit that fit in ``mem_bytes`` (``--mem``).

    Prefers batches of about ``target_rows`` volumes (tall enough for the product to run at
    full speed) and shrinks them, down to one run, before shrinking the voxel chunk below
    8192.

    Parameters
    ----------
    mem_bytes : int
    n_regressors, n_voxels : int
        ``P`` and ``V``.
    n_scans : int
        The longest run's number of volumes (a batch holds at least one run).
    precision : {"double", "mixed"}
    held_rows : int
        Volumes read ahead (see :func:`stream_memory`).
    target_rows : int
    accumulators, reader_bytes, whitened_rows : int
        See :func:`stream_memory`.

    Returns
    -------
    (batch_rows, voxel_chunk) : tuple of int

    Raises
    ------
    UsageError
        When even one run with a one-voxel chunk does not fit.
    """
    P, V, T = int(n_regressors), int(n_voxels), int(n_scans)
    rows_options = []
    r = max(T, int(target_rows))
    while r > T:
        rows_options.append(r)
        r //= 2
    rows_options.append(T)

    def fits(rows: int, chunk: int) -> bool:
        return stream_memory(P, V, rows, chunk, precision, held_rows, accumulators,
                             reader_bytes, whitened_rows) <= mem_bytes

    if not fits(T, 1):
        need = stream_memory(P, V, T, min(V, 1024), precision, held_rows, accumulators,
                             reader_bytes, whitened_rows) / 2**30
        raise UsageError(
            f"--mem: {mem_bytes / 2**30:.2f} GiB is too small for the GLM of {P} regressors "
            f"x {V} voxels (needs about {need:.2f} GiB); raise --mem or use fewer voxels"
        )
    best = (T, 1)
    for rows in rows_options:
        if not fits(rows, 1):
            continue
        lo, hi = 1, V
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(rows, mid):
                lo = mid
            else:
                hi = mid - 1
        if lo >= min(V, 8192):
            return rows, lo
        if lo > best[1]:
            best = (rows, lo)
    return best
