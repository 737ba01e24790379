"""One streamed pass over a participant's runs: read (in parallel, cached), design, accumulate.

Reader threads decompress and mask runs ahead of the arithmetic (``--nprocs`` of them, at most
``nprocs + 1`` runs in flight; decompression and the products release the GIL, so reading and
arithmetic overlap). Runs are accumulated in batches of about 2,000 volumes with one tall
``X̃ᵀỸ`` product per voxel chunk (:func:`bids_facedecode.glm.accumulate_runs`); the batch
height and the voxel chunk come from ``--mem`` (:func:`bids_facedecode.glm.plan_stream`).
Runs are read into a fixed set of recycled float32 buffers (a fresh array per run would be
page-faulted in again every time). Memory is bounded by the batch, the read-ahead and the
``P × V`` accumulators, whatever the number of runs; the results do not depend on
``--nprocs``, ``--mem`` or the cache.

The latent block of the design is passed to the GLM as its factor (HRF response per training
trial × latent vectors; :attr:`bids_facedecode.design.RunDesign.factor`), which cuts the
arithmetic of ``XᵀY`` when a run has fewer training trials than volumes. The groups of runs that
need their own normal equations (the split halves of the reliability analysis, the ridge
decoder's CV folds) are filled in the same pass at no extra arithmetic: runs are streamed group
by group, each into one accumulator, and the total is the sum of the groups
(:func:`bids_facedecode.glm.stream_plan`).

**Noise model** (``--noise-model``, :mod:`bids_facedecode.glm.noise`). With ``ar1`` each run's
AR(1) coefficient is estimated from that run's own data by the reader thread that reads it,
beside the arithmetic of the runs before it (:func:`run_ar1`: residuals of a voxel sample on the
run's nuisance and non-latent columns, pooled over voxels), and the run enters every accumulator
(total, halves, CV folds) as its whitened model. The data are still read once; the estimate
costs a small product per run.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .. import glm
from ..bidsio.layout import RunInfo
from ..bidsio.run_cache import load_masked_run_cached
from ..config import Settings
from ..design import RunDesign, build_run_design
from ..errors import DataError
from ..glm import FoldAccumulator, RunData, noise, stream_plan
from ..runtime import settle
from ..tensors import as_tensor
from .inputs import ParticipantInputs
from .spaces import JointLatents

LOG = logging.getLogger(__name__)

#: seconds between two progress lines of the pass (a real subject's pass takes minutes)
PROGRESS_EVERY_S = 10.0


class LoadedRun(NamedTuple):
    """One run as a reader thread hands it over.

    Attributes
    ----------
    data : ndarray of shape (T, V), float32
        The masked run (the first ``T`` rows of ``buffer``).
    buffer : ndarray of shape (T_max, V), float32
        The recycled buffer holding it, given back once the run is accumulated.
    design : RunDesign
    rho : float
        The run's AR(1) coefficient (0 with the white-noise model).
    """

    data: np.ndarray
    buffer: np.ndarray
    design: RunDesign
    rho: float


class _Pending(NamedTuple):
    """A run waiting in the batch: what the GLM takes, its accumulator, its buffer."""

    run: RunData
    target: glm.NormalEquations
    buffer: np.ndarray


class _Progress:
    """Periodic INFO lines while the runs stream by: runs and volumes done, elapsed, remaining."""

    def __init__(self, subject: str, runs: Sequence[RunInfo], t0: float):
        self.subject, self.t0, self.last = subject, t0, t0
        self.n_runs = len(runs)
        self.total = sum(r.n_scans for r in runs)
        self.done = 0

    def step(self, i: int, run: RunInfo) -> None:
        """Run ``i`` (0-based, streaming order) has been read and queued."""
        self.done += run.n_scans
        now = time.perf_counter()
        if now - self.last < PROGRESS_EVERY_S or i + 1 == self.n_runs:
            return
        self.last = now
        elapsed = now - self.t0
        left = elapsed * (self.total - self.done) / max(self.done, 1)
        LOG.info("sub-%s: %d/%d runs read (%d of %d volumes), %.0f s, about %.0f s left",
                 self.subject, i + 1, self.n_runs, self.done, self.total, elapsed, left)


def run_design(inputs: ParticipantInputs, latents: JointLatents, settings: Settings,
               k: int) -> RunDesign:
    """The design of run ``k`` as the GLM fits it (the report shows run 0's)."""
    run = inputs.runs[k]
    frame_times = np.arange(run.n_scans) * run.t_r
    return build_run_design(
        inputs.trials[k], frame_times, latents.train, inputs.test_ids, inputs.imagery_ids,
        inputs.nuisance_kinds, inputs.confounds[k] if inputs.confounds else None,
        latent_dim=latents.total_dim, run_label=run.label.replace(" ", "_"),
        high_pass=settings.high_pass,
    )


def run_ar1(design: RunDesign, Y: np.ndarray, sample: np.ndarray) -> float:
    """AR(1) coefficient of one run's noise, pooled over the voxels ``sample``.

    Residuals are formed on the run's nuisance (drift, intercept, confounds) and its shared
    columns other than the latent block (face, test and imagery images, nuisance trial types):
    the latent block has more columns than a run has volumes. When even those leave fewer than
    3 degrees of freedom, on the nuisance alone.

    Parameters
    ----------
    design : RunDesign
    Y : ndarray of shape (T, V), float32
    sample : ndarray of int, shape (m,)
        Voxel indices (:func:`bids_facedecode.glm.noise.sample_voxels`).

    Returns
    -------
    float
    """
    T = Y.shape[0]
    cols = np.hstack([design.nuisance, design.shared[:, design.n_latents:]])
    Q = glm.nuisance_basis(as_tensor(cols, "cpu"))
    if Q.shape[1] > T - 3:
        Q = glm.nuisance_basis(as_tensor(design.nuisance, "cpu"))
    return noise.estimate_ar1(Y[:, sample], Q.numpy())


@contextlib.contextmanager
def quiet_cpu() -> Iterator[None]:
    """The conditions of the streamed pass: every core for torch's products and the readers.

    * numpy's (and scipy's) OpenBLAS runs on one thread: the pass calls it only for small
      products (a run's design), after which its idle threads spin-wait and take CPU time from
      the products and the decompression. torch's own BLAS and thread pool are not affected.
    * The objects made before the pass (the participant's inputs and latents) are frozen out
      of the garbage collector (:func:`bids_facedecode.runtime.settle`), whose full
      collections would otherwise walk them again and again while the pass allocates. They stay
      frozen afterwards: they live until the participant is done, and reference counting still
      frees them then.

    ``benchmarks/README.md`` measures what each costs.
    """
    settle()
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def reader_memory(nprocs: int, n_scans: int, mask: np.ndarray) -> int:
    """Bytes the reader threads hold: each a decompressed run (<= 4 bytes a voxel) and its
    masked copy, for runs of ``n_scans`` volumes on the grid of ``mask``."""
    return max(1, int(nprocs)) * int(n_scans) * 4 * (int(mask.size) + int(mask.sum()))


def fit_joint_glm(inputs: ParticipantInputs, latents: JointLatents, mask: np.ndarray,
                  settings: Settings, device: torch.device, cache_dir: Path | None,
                  precision: str | None = None,
                  partitions: Sequence[FoldAccumulator | None] = ()) -> glm.NormalEquations:
    """Stream the runs through the design and the normal equations (one pass over the data).

    Parameters
    ----------
    inputs : ParticipantInputs
    latents : JointLatents
    mask : ndarray of bool, shape (X, Y, Z)
    settings : Settings
        ``nprocs`` (reader threads), ``mem_gb`` (batch and chunk sizes), ``glm_precision``,
        ``noise_model``.
    device : torch.device
    cache_dir : Path or None
        Masked-run cache (see :mod:`bids_facedecode.bidsio.run_cache`).
    precision : {"mixed", "double"}, optional
        Overrides ``settings.glm_precision``.
    partitions : sequence of FoldAccumulator (or None)
        Groups of runs whose own normal equations are wanted too (the split halves, the CV
        folds); filled in the same pass, each run still accumulated once
        (:func:`bids_facedecode.glm.stream_plan`).

    Returns
    -------
    NormalEquations
        On ``device``; ``noise`` records the noise model and each run's AR(1) coefficient.
    """
    n_vox = int(mask.sum())
    precision = precision or settings.glm_precision
    workers = max(1, settings.nprocs)
    ahead = workers + 1
    runs = inputs.runs
    longest = max(r.n_scans for r in runs)
    t0 = time.perf_counter()

    first = run_design(inputs, latents, settings, 0)
    plan = stream_plan(partitions, len(runs))
    ar1 = settings.noise_model == "ar1"
    sample = noise.sample_voxels(n_vox)
    rhos: dict[str, float] = {}
    # sized before anything is read: a --mem too small stops here
    rows, chunk = glm.plan_stream(int(settings.mem_gb * 2**30), len(first.shared_names), n_vox,
                                  longest, precision, held_rows=ahead * longest,
                                  accumulators=plan.n_slots,
                                  reader_bytes=reader_memory(workers, longest, mask),
                                  whitened_rows=longest if ar1 else 0)
    LOG.info("sub-%s: GLM of %d regressors x %d voxels, %s noise model, %s precision, batches of "
             "<= %d volumes, voxel chunks of %d", inputs.subject, len(first.shared_names), n_vox,
             "AR(1)" if ar1 else "white (OLS)", precision, rows, chunk)

    # float32 run buffers, recycled: runs read ahead + one batch + the run in hand
    free: queue.SimpleQueue = queue.SimpleQueue()
    shortest = min(r.n_scans for r in runs)
    for _ in range(min(len(runs), ahead + rows // shortest + 1)):
        free.put(None)  # allocated on first use

    def load(k: int) -> LoadedRun:
        """Read run ``k``, build its design and estimate its AR(1) coefficient (reader thread:
        beside the arithmetic of the runs before it)."""
        run = runs[k]
        buf = free.get()
        if buf is None:
            buf = np.empty((longest, n_vox), np.float32)
        try:
            Y = load_masked_run_cached(run.bold, mask, cache_dir, out=buf)
            if Y.shape[0] != run.n_scans:
                raise DataError(f"{run.bold}: {Y.shape[0]} volumes, header says {run.n_scans}")
            design = first if k == 0 else run_design(inputs, latents, settings, k)
            return LoadedRun(Y, buf, design, run_ar1(design, Y, sample) if ar1 else 0.0)
        except BaseException:
            free.put(buf)
            raise

    def flush() -> None:
        glm.accumulate_runs([p.target for p in pending], [p.run for p in pending],
                            voxel_chunk=chunk)
        for p in pending:
            free.put(p.buffer)
        pending.clear()

    pending: list[_Pending] = []
    wait = 0.0
    order = plan.order
    progress = _Progress(inputs.subject, runs, t0)
    with quiet_cpu(), ThreadPoolExecutor(max_workers=workers) as pool:
        futures = deque(pool.submit(load, k) for k in order[:ahead])
        # the readers start while the accumulators are allocated (zeroing P x V float64 each)
        slots = [glm.new_normal_equations(first.shared_names, n_vox, device, precision=precision)
                 for _ in range(plan.n_slots)]
        for s in slots[1:]:
            s.workspace = slots[0].workspace  # one set of batch buffers
        ne = slots[0]
        for i, k in enumerate(order):
            run = runs[k]
            tw = time.perf_counter()
            loaded = futures.popleft().result()
            wait += time.perf_counter() - tw
            if i + ahead < len(runs):
                futures.append(pool.submit(load, order[i + ahead]))
            if pending and sum(p.run.data.shape[0] for p in pending) + loaded.data.shape[0] > rows:
                flush()
            rhos[run.label] = loaded.rho
            design = loaded.design
            pending.append(_Pending(
                RunData(design.shared, loaded.data, design.nuisance, design.factor, loaded.rho),
                slots[plan.home[k]], loaded.buffer))
            del loaded, design
            if i in plan.copies:  # a group is complete: copy it where it is also needed
                flush()
                for copy in plan.copies[i]:
                    slots[copy.target].add_(slots[copy.source])
            LOG.debug("sub-%s: run %d/%d (%s) read, %.1f s", inputs.subject, i + 1, len(runs),
                      run.label, time.perf_counter() - t0)
            progress.step(i, run)
        flush()
        ne.workspace.clear()
    for copy in plan.final:
        slots[copy.target].add_(slots[copy.source])
    ne = plan.hand_out(slots)
    ne.noise = {"model": settings.noise_model,
                "ar1": {r.label: rhos[r.label] for r in runs} if ar1 else {}}
    if ar1:
        vals = np.array(list(rhos.values()))
        LOG.info("sub-%s: AR(1) coefficient per run %.3f to %.3f (mean %.3f), pooled over %d "
                 "voxels", inputs.subject, vals.min(), vals.max(), vals.mean(), sample.size)
    LOG.info("sub-%s: %d runs accumulated in %.1f s (%.1f s waiting for data)", inputs.subject,
             len(runs), time.perf_counter() - t0, wait)
    return ne
