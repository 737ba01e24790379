"""Normal equations per group of runs, filled during the one streamed pass over the data.

The reliability checks need the GLM of two halves of the runs (odd / even runs: the
test-image betas of each half), and the ridge decoder needs the GLM of every
cross-validation fold (sessions, else odd / even runs). Each is the same joint model
accumulated over a subset of runs: a :class:`FoldAccumulator` names the groups, and
:func:`stream_plan` arranges the pass of
:func:`bids_facedecode.workflow.streaming.fit_joint_glm` so that every run is accumulated
**once**, into one accumulator, whatever the groups: runs are streamed group by group, each
group's runs go into its own accumulator (the last group's straight into the total), the total
is the sum of the groups, and the halves, when the folds are there too, receive a copy of the
first half of each fold as soon as it is complete. The last group of each partition is never
accumulated: it is the total minus the others (exact sums of float64 accumulators). Which run
belongs to which group is the workflow's choice (:mod:`bids_facedecode.workflow.folds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ..errors import DataError
from .normal_equations import NormalEquations, solve, subset


def subtract(total: NormalEquations, parts: Sequence[NormalEquations]) -> NormalEquations:
    """``total − Σ parts`` as new normal equations (the remaining runs)."""
    out = NormalEquations(
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


def voxels(ne: NormalEquations, index: np.ndarray) -> NormalEquations:
    """Normal equations restricted to some voxels (columns of ``xty``/``yty``)."""
    it = torch.as_tensor(np.asarray(index, dtype=np.int64), device=ne.device)
    return NormalEquations(
        xtx=ne.xtx.clone(), xty=ne.xty[:, it].clone(), yty=ne.yty[it].clone(), n_obs=ne.n_obs,
        n_nuisance=ne.n_nuisance, names=list(ne.names), x_ss=ne.x_ss.clone(), precision=ne.precision)


def present_columns(ne: NormalEquations) -> list[str]:
    """Regressors that occur in the accumulated runs (e.g. a test image absent from a half is not)."""
    tiny = torch.finfo(ne.x_ss.dtype).tiny
    return [n for n, s in zip(ne.names, ne.x_ss.tolist(), strict=True) if s > tiny]


def solve_present(ne: NormalEquations) -> tuple[torch.Tensor, list[str]]:
    """Betas of the regressors present in ``ne`` (absent ones are dropped from the model).

    Returns
    -------
    betas : Tensor of shape (P_present, V)
    names : list of str
    """
    names = present_columns(ne)
    return solve(subset(ne, names)), names


class FoldAccumulator:
    """The groups of runs of one partition, and their normal equations once the pass is done.

    Parameters
    ----------
    fold_of_run : sequence of int
        Group label (0..K−1) of each run, in acquisition order (``inputs.runs``).
    name : str
        What the groups are for (logs and messages).

    Attributes
    ----------
    parts : dict of int to NormalEquations
        Filled by the pass: the groups ``0..K−2`` (the last is derived, see :meth:`folds`).
    """

    def __init__(self, fold_of_run: Sequence[int], name: str):
        self.fold_of_run = [int(f) for f in fold_of_run]
        self.n_folds = max(self.fold_of_run) + 1 if self.fold_of_run else 0
        if self.n_folds < 2:
            raise DataError(f"{name}: needs at least 2 groups of runs, got {self.n_folds}")
        self.name = name
        self.parts: dict[int, NormalEquations] = {}

    def folds(self, total: NormalEquations,
              index: np.ndarray | None = None) -> list[NormalEquations]:
        """The normal equations of every fold (the last one derived from ``total``).

        With ``index``, restricted to those voxels (``total`` must already be restricted to
        them): copies of ``P × len(index)``, not of ``P × V``.
        """
        missing = [f for f in range(self.n_folds - 1) if f not in self.parts]
        if missing:
            raise DataError(f"{self.name}: fold(s) {missing} received no run")
        parts = [self.parts[f] for f in range(self.n_folds - 1)]
        if index is not None:
            parts = [voxels(p, index) for p in parts]
        if any(p.n_voxels != total.n_voxels for p in parts):
            raise DataError(f"{self.name}: folds and total have different voxels")
        return parts + [subtract(total, parts)]


class SlotCopy(NamedTuple):
    """Add the accumulator in slot ``source`` into the one in slot ``target``."""

    source: int
    target: int


@dataclass
class StreamPlan:
    """How one pass fills the total and the groups of up to two partitions (:func:`stream_plan`).

    Accumulator slot 0 is the total; slots ``1..K−1`` the groups ``0..K−2`` of the primary
    partition (the one with more groups); the next slot, with a secondary partition, its first
    half.

    Attributes
    ----------
    order : list of int
        Runs (indices into ``inputs.runs``) in streaming order.
    home : list of int
        Accumulator slot of each run (by run index): the only one it is added to.
    copies : dict of int to list of SlotCopy
        After the run at this position of ``order`` (its group now complete), these copies —
        the secondary partition's half, from the home of a group that holds nothing else yet.
    final : list of SlotCopy
        At the end (the groups into the total).
    n_slots : int
    primary, secondary : FoldAccumulator or None
        The partitions (see :func:`stream_plan`).
    """

    order: list[int]
    home: list[int]
    copies: dict[int, list[SlotCopy]] = field(default_factory=dict)
    final: list[SlotCopy] = field(default_factory=list)
    n_slots: int = 1
    primary: FoldAccumulator | None = None
    secondary: FoldAccumulator | None = None

    def hand_out(self, slots: Sequence[NormalEquations]) -> NormalEquations:
        """Give each partition its parts; return the total."""
        if self.primary is not None:
            present = set(self.primary.fold_of_run)
            self.primary.parts = {f: slots[1 + f] for f in range(self.primary.n_folds - 1)
                                  if f in present}
        if self.secondary is not None and 0 in self.secondary.fold_of_run:
            self.secondary.parts = {0: slots[self.primary.n_folds]}
        return slots[0]


def stream_plan(partitions: Sequence[FoldAccumulator], n_runs: int) -> StreamPlan:
    """Order and accumulators of a pass that fills the total and each partition's groups.

    Every run is accumulated once. With one partition its groups are the homes (the last group
    goes straight into the total) and the total is their sum. With two, the one with more groups
    (the CV folds) gives the homes and the other must have 2 groups (the split halves): each fold
    streams its first-half runs first, into its still empty home, which is then copied into the
    first half; the last fold goes first (its home is the total).

    Parameters
    ----------
    partitions : sequence of FoldAccumulator
        At most two; a second one with exactly two groups.
    n_runs : int

    Returns
    -------
    StreamPlan
    """
    parts = [p for p in partitions if p is not None]
    for p in parts:
        if len(p.fold_of_run) != n_runs:
            raise DataError(f"{p.name}: {len(p.fold_of_run)} group labels for {n_runs} runs")
    if not parts:
        return StreamPlan(order=list(range(n_runs)), home=[0] * n_runs)
    if len(parts) > 2:
        raise DataError("a pass fills at most two partitions of the runs")
    primary = max(parts, key=lambda p: p.n_folds)
    secondary = next((p for p in parts if p is not primary), None)
    if secondary is not None and secondary.n_folds != 2:
        raise DataError(f"{secondary.name}: a second partition must have 2 groups")
    last = primary.n_folds - 1
    home = [0 if f == last else 1 + f for f in primary.fold_of_run]
    half = [0] * n_runs if secondary is None else secondary.fold_of_run
    # the last fold first (its home, the total, must be empty for its half copy), then the
    # others; inside a fold the first half first, each half in acquisition order
    order = sorted(range(n_runs), key=lambda k: (primary.fold_of_run[k] != last,
                                                 primary.fold_of_run[k], half[k], k))
    plan = StreamPlan(order=order, home=home, n_slots=primary.n_folds + (secondary is not None),
                      primary=primary, secondary=secondary)
    if secondary is not None:
        target = primary.n_folds
        for i, k in enumerate(order):
            nxt = order[i + 1] if i + 1 < n_runs else None
            group_ends = nxt is None or (primary.fold_of_run[nxt], half[nxt]) != (
                primary.fold_of_run[k], half[k])
            if half[k] == 0 and group_ends:
                plan.copies[i] = [SlotCopy(home[k], target)]
    plan.final = [SlotCopy(1 + f, 0) for f in range(last) if f in set(primary.fold_of_run)]
    return plan
