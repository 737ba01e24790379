"""Which run belongs to which group: the split halves and the ridge decoder's CV folds.

The groups' normal equations are filled in the one pass over the data
(:mod:`bids_facedecode.glm.folds`: :class:`~bids_facedecode.glm.folds.FoldAccumulator` and
:func:`~bids_facedecode.glm.folds.stream_plan`); this module only labels the runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..bidsio.layout import RunInfo
from ..errors import DataError


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
