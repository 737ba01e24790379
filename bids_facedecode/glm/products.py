"""The chunked products that add a batch of prepared runs to the normal equations.

For each voxel chunk, the runs' data are centred (mixed precision), whitened with their AR(1)
filter and residualised on their nuisance basis, then one product per accumulator adds
``X̃ᵀỸ`` (or, for a factored design ``X[:, :F] = E W``, ``Wᵀ(EᵀỸ)`` for the leading block) and
``Σỹ²``. :func:`stacked_products` stacks the residualised runs in one buffer;
:func:`fused_products` (mixed precision, factored design, an intercept in every run) applies
the nuisance projection to the small side instead and reads each chunk of data once. Buffers
are kept in ``NormalEquations.workspace`` and reused from one batch to the next.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..device import DATA_DTYPE, GRAM_DTYPE
from ..errors import DataError
from .noise import whiten_rows_into
from .normal_equations import NormalEquations
from .runs import PreparedRun, RunGroup


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
    ``8·P·c``-byte block, page-faulted in on every call, slower than the add itself);
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


def stacked_products(ne: NormalEquations, prepared: Sequence[PreparedRun],
                     groups: Sequence[RunGroup], F: int, Xb: torch.Tensor, cdt: torch.dtype,
                     voxel_chunk: int | None) -> None:
    """Residualise the batch into one stacked buffer, then one product per accumulator.

    Parameters
    ----------
    ne : NormalEquations
        The batch's first accumulator (its workspace holds the buffers).
    prepared : sequence of PreparedRun
        The batch, runs sharing an accumulator next to each other.
    groups : sequence of RunGroup
        The accumulators and their runs' rows (and events) in the batch; each is updated.
    F : int
        Width of the factored leading block (:func:`~bids_facedecode.glm.runs.factored_width`),
        0 for a dense product.
    Xb : Tensor of shape (R, P), ``cdt``
        The residualised designs of the batch, stacked.
    cdt : torch.dtype
        Dtype of the product (float64: ``"double"``; float32: ``"mixed"``).
    voxel_chunk : int or None
        Voxels per step (all at once when None).
    """
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


def fused_products(ne: NormalEquations, prepared: Sequence[PreparedRun],
                   groups: Sequence[RunGroup], F: int, voxel_chunk: int | None) -> None:
    """Mixed precision, factored design, intercept in every run's nuisance: fewer data passes.

    Only the voxel means are removed from the data (exact in float32); the nuisance projection
    is applied to the small side instead, as ``X̃ᵀỸ = X̃ᵀY`` and
    ``EᵀỸ = EᵀY − (EᵀQ)(QᵀY)``, ``‖ỹ‖² = ‖y‖² − ‖Qᵀy‖²`` (with a noise model, ``y`` is the
    whitened centred chunk and ``X̃``, ``E``, ``Q`` come from the whitened design). Per run, one
    product
    ``[X̃_tail | Q]ᵀ Y`` and the event responses ``EᵀY`` block by block over the volumes each
    block of events touches (:func:`~bids_facedecode.glm.runs.event_blocks`), which skips the
    zeros of a dense ``[E | X̃_tail | Q]ᵀ Y``.

    Parameters
    ----------
    ne, prepared, groups, F, voxel_chunk
        As in :func:`stacked_products` (``F > 0`` here).
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
