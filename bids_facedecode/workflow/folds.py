"""Normal equations per group of runs, filled during the one streamed pass over the data.

The reliability checks need the GLM of two halves of the runs (odd / even runs: the
test-image betas of each half), and the ridge decoder needs the GLM of every
cross-validation fold (sessions, else odd / even runs). Each is the same joint model
accumulated over a subset of runs, so a :class:`FoldAccumulator` is handed to
:func:`bids_facedecode.workflow.streaming.fit_joint_glm` as a run hook: after a run has been
added to the total, the hook adds it to its fold's accumulator. The last fold is never
accumulated: it is the total minus the others (exact sums of float64 accumulators).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from .. import glm
from ..bidsio.layout import RunInfo
from ..errors import DataError

LOG = logging.getLogger(__name__)


def half_of_runs(runs: Sequence[RunInfo]) -> list[int]:
    """Split-half labels: 0 for the 1st, 3rd, ... run in acquisition order, 1 for the others."""
    return [k % 2 for k in range(len(runs))]


def cv_folds_of_runs(runs: Sequence[RunInfo]) -> tuple[list[int], str]:
    """Cross-validation fold of each run: its session when there are >= 2, else odd / even runs.

    Returns
    -------
    folds : list of int, one per run
    kind : str
        ``"session"`` or ``"run-half"``.
    """
    sessions = list(dict.fromkeys(r.session for r in runs))
    if len(sessions) >= 2:
        return [sessions.index(r.session) for r in runs], "session"
    if len(runs) < 2:
        raise DataError("ridge: cross-validation needs at least 2 runs")
    return half_of_runs(runs), "run-half"


def subtract(total: glm.NormalEquations, parts: Sequence[glm.NormalEquations]) -> glm.NormalEquations:
    """``total − Σ parts`` as new normal equations (the remaining runs)."""
    out = glm.NormalEquations(
        xtx=total.xtx.clone(), xty=total.xty.clone(), yty=total.yty.clone(), n_obs=total.n_obs,
        n_nuisance=total.n_nuisance, names=list(total.names), x_ss=total.x_ss.clone(),
        precision=total.precision)
    for p in parts:
        if p.names != total.names:
            raise DataError("normal equations: cannot subtract accumulators of different designs")
        out.xtx -= p.xtx
        out.xty -= p.xty
        out.yty -= p.yty
        out.x_ss -= p.x_ss
        out.n_obs -= p.n_obs
        out.n_nuisance -= p.n_nuisance
    return out


def voxels(ne: glm.NormalEquations, index: np.ndarray) -> glm.NormalEquations:
    """Normal equations restricted to some voxels (columns of ``xty``/``yty``)."""
    it = torch.as_tensor(np.asarray(index, dtype=np.int64), device=ne.device)
    return glm.NormalEquations(
        xtx=ne.xtx.clone(), xty=ne.xty[:, it].clone(), yty=ne.yty[it].clone(), n_obs=ne.n_obs,
        n_nuisance=ne.n_nuisance, names=list(ne.names), x_ss=ne.x_ss.clone(), precision=ne.precision)


def present_columns(ne: glm.NormalEquations) -> list[str]:
    """Regressors that occur in the accumulated runs (e.g. a test image absent from a half is not)."""
    tiny = torch.finfo(ne.x_ss.dtype).tiny
    return [n for n, s in zip(ne.names, ne.x_ss.tolist(), strict=True) if s > tiny]


def solve_present(ne: glm.NormalEquations) -> tuple[torch.Tensor, list[str]]:
    """Betas of the regressors present in ``ne`` (absent ones are dropped from the model).

    Returns
    -------
    betas : Tensor of shape (P_present, V)
    names : list of str
    """
    names = present_columns(ne)
    return glm.solve(glm.subset(ne, names)), names


class FoldAccumulator:
    """Run hook: accumulate each run into the normal equations of its fold.

    Parameters
    ----------
    fold_of_run : sequence of int
        Fold label (0..K−1) of each run, in the order ``fit_joint_glm`` streams them.
    name : str
        What the folds are for (logs and messages).
    """

    def __init__(self, fold_of_run: Sequence[int], name: str):
        self.fold_of_run = [int(f) for f in fold_of_run]
        self.n_folds = max(self.fold_of_run) + 1 if self.fold_of_run else 0
        if self.n_folds < 2:
            raise DataError(f"{name}: needs at least 2 groups of runs, got {self.n_folds}")
        self.name = name
        self.parts: dict[int, glm.NormalEquations] = {}
        self.voxel_chunk: int | None = None

    def __call__(self, k: int, ne_total: glm.NormalEquations, design, Y) -> None:
        """Add run ``k`` (its design and data, as accumulated into ``ne_total``) to its fold."""
        fold = self.fold_of_run[k]
        if fold == self.n_folds - 1:  # the last fold is the total minus the others
            return
        if fold not in self.parts:
            self.parts[fold] = glm.new_normal_equations(ne_total.names, ne_total.n_voxels,
                                                        ne_total.device, ne_total.precision)
        glm.accumulate_run(self.parts[fold], design.shared, Y, design.nuisance,
                           voxel_chunk=self.voxel_chunk, factor=getattr(design, "factor", None))

    def folds(self, total: glm.NormalEquations) -> list[glm.NormalEquations]:
        """The normal equations of every fold (the last one derived from ``total``)."""
        missing = [f for f in range(self.n_folds - 1) if f not in self.parts]
        if missing:
            raise DataError(f"{self.name}: fold(s) {missing} received no run")
        parts = [self.parts[f] for f in range(self.n_folds - 1)]
        return parts + [subtract(total, parts)]
