"""The participant GLM: one joint model over runs, streamed into normal equations.

Runs are fitted jointly with run-specific nuisance regressors (drift, intercept, confounds);
by the Frisch–Waugh–Lovell theorem each run is residualised on its own nuisance columns and
added to the normal equations, then forgotten. The modules, in the order data flow through them:

* :mod:`.noise` — the AR(1) noise model: a run's pooled coefficient and its whitening filter;
* :mod:`.normal_equations` — the accumulators (:class:`NormalEquations`), the nuisance basis,
  the Cholesky factor and solve, :func:`subset` of the regressors;
* :mod:`.runs` — one run as the accumulation takes it (:class:`RunData`) and made ready for it;
* :mod:`.products` — the chunked products that add a batch of runs;
* :mod:`.accumulate` — :func:`accumulate_run` / :func:`accumulate_runs`;
* :mod:`.memory` — :func:`plan_stream`: batch and voxel chunk from ``--mem``;
* :mod:`.folds` — normal equations of groups of runs (split halves, CV folds) filled in the
  same pass (:func:`stream_plan`) and the algebra between them;
* :mod:`.stats` — F, t, σ² and betas from one triangular solve (:func:`whiten`), betas of a
  few regressors (:func:`block_betas`).

Everything is written once on torch tensors and runs unchanged on CPU and CUDA.
"""

from .accumulate import accumulate_run, accumulate_runs
from .folds import (
    FoldAccumulator,
    SlotCopy,
    StreamPlan,
    present_columns,
    solve_present,
    stream_plan,
    subtract,
    voxels,
)
from .memory import plan_stream, stream_memory
from .noise import NOISE_MODELS
from .normal_equations import (
    PRECISIONS,
    RCOND,
    NormalEquations,
    cholesky_factor,
    column_indices,
    contrast_weights,
    factor_gram,
    new_normal_equations,
    nuisance_basis,
    solve,
    subset,
)
from .runs import DesignFactor, RunData
from .stats import Whitened, block_betas, whiten

__all__ = [
    "NOISE_MODELS", "PRECISIONS", "RCOND", "DesignFactor", "FoldAccumulator", "NormalEquations",
    "RunData", "SlotCopy", "StreamPlan", "Whitened", "accumulate_run", "accumulate_runs",
    "block_betas", "cholesky_factor", "column_indices", "contrast_weights", "factor_gram",
    "new_normal_equations", "nuisance_basis", "plan_stream", "present_columns", "solve",
    "solve_present", "stream_memory", "stream_plan", "subset", "subtract", "voxels", "whiten",
]
