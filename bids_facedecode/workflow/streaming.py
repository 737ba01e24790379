"""One streamed pass over a participant's runs: read (in parallel, cached), design, accumulate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .. import glm
from ..bidsio.bold import load_masked_run_cached
from ..bidsio.layout import RunInfo
from ..config import Settings
from ..design import build_run_design
from ..errors import DataError
from .inputs import ParticipantInputs
from .spaces import JointLatents

LOG = logging.getLogger(__name__)


def fit_joint_glm(inputs: ParticipantInputs, latents: JointLatents, mask: np.ndarray,
                  settings: Settings, device: torch.device, cache_dir: Path | None,
                  run_hooks: Sequence[Callable] = ()):
    """Stream the runs through the design and the normal equations (one pass over the data).

    Runs are read (and cached) in parallel threads while the previous run is accumulated.
    Each of ``run_hooks`` is called as ``hook(k, ne, design, Y)`` after run ``k`` has been
    accumulated into ``ne`` (e.g. :class:`bids_facedecode.workflow.folds.FoldAccumulator`).
    """
    n_vox = int(mask.sum())
    ne = None
    chunk = None
    t0 = time.perf_counter()

    def load(run: RunInfo) -> np.ndarray:
        return load_masked_run_cached(run.bold, mask, cache_dir)

    with ThreadPoolExecutor(max_workers=max(1, settings.nprocs)) as pool:
        futures = [pool.submit(load, r) for r in inputs.runs[: max(1, settings.nprocs) + 1]]
        for k, (run, trials) in enumerate(zip(inputs.runs, inputs.trials, strict=True)):
            frame_times = np.arange(run.n_scans) * run.t_r
            design = build_run_design(
                trials, frame_times, latents.train, inputs.test_ids, inputs.imagery_ids,
                inputs.nuisance_kinds, inputs.confounds[k] if inputs.confounds else None,
                latent_dim=latents.total_dim, run_label=run.label.replace(" ", "_"),
                high_pass=settings.high_pass,
            )
            if ne is None:
                ne = glm.new_normal_equations(design.shared_names, n_vox, device)
                longest = max(r.n_scans for r in inputs.runs)
                chunk = glm.plan_voxel_chunk(int(settings.mem_gb * 2**30), len(design.shared_names),
                                             n_vox, longest)
            Y = futures[k].result()
            futures[k] = None
            nxt = k + max(1, settings.nprocs) + 1
            if nxt < len(inputs.runs):
                futures.append(pool.submit(load, inputs.runs[nxt]))
            if Y.shape[0] != run.n_scans:
                raise DataError(f"{run.bold}: {Y.shape[0]} volumes, header says {run.n_scans}")
            glm.accumulate_run(ne, design.shared, Y, design.nuisance, voxel_chunk=chunk)
            for hook in run_hooks:
                hook(k, ne, design, Y)
            del Y
            LOG.info("sub-%s: run %d/%d (%s) accumulated, %.1f s", inputs.subject, k + 1,
                     len(inputs.runs), run.label, time.perf_counter() - t0)
    return ne


