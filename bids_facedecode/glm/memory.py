"""Memory of a streamed fit and the batch and voxel-chunk sizes that fit ``--mem``."""

from __future__ import annotations

from ..errors import UsageError


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
    """Peak bytes of a streamed fit with :func:`~bids_facedecode.glm.accumulate.accumulate_runs`
    (see :func:`plan_stream`).

    Counts the float64 accumulators (``P·V + P² + 2V`` each), the float32 data of the runs
    waiting in the batch (``batch_rows·V``) and of runs read ahead (``held_rows·V``), the
    stacked design, the chunk buffer and the event responses of a factored design
    (``batch_rows·(P + 2·chunk)`` of the product dtype), the float32 product of a chunk
    (``P·chunk``, mixed precision) and, after the pass, the whitened cross-products of
    :func:`bids_facedecode.glm.stats.whiten` (one more ``P·V`` float64 array).

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
        halves and CV folds: :func:`bids_facedecode.glm.folds.stream_plan`).
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
