"""What the ridge penalty's choice reads from the GLM (:mod:`bids_facedecode.ridge`).

Per cross-validation fold (filled by the one streamed pass), the voxels of every region are
selected again from the other folds' runs alone (the F-test of the latent block), so that the
held-out fold's noise does not take part in the selection: voxels picked on all the data carry
noise that both the held-out and the other folds share, and a region without any signal would
then score above chance. At those voxels, the maps (rows z1..zD, face) of the other folds and
of the held-out fold are what the choice sees, with the training latents; none of them moves
when the test images' responses do (the test-image regressors absorb those).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import decode, glm, ridge
from ..errors import DataError
from ..glm import FoldAccumulator, present_columns, solve_present, subtract, voxels


@dataclass
class FoldMaps:
    """One fold's maps at the union of its regions' voxels.

    Attributes
    ----------
    index : int array of shape (n,)
        Sorted voxel indices (into the analysis mask) of the maps' columns.
    train, held : arrays of shape (D+1, n)
        The maps of the other folds' runs and of the fold's own runs.
    selected : list of int arrays
        Per region (in the order given to :func:`fold_maps`), the voxels selected from the
        other folds' runs; empty for a region without voxels.
    """

    index: np.ndarray
    train: np.ndarray
    held: np.ndarray
    selected: list[np.ndarray]


def _maps(ne: glm.NormalEquations, columns: list[str], D: int, what: str) -> np.ndarray:
    try:
        betas, names = solve_present(glm.subset(ne, columns))
    except DataError as exc:
        raise DataError(f"ridge: {what} cannot be fitted alone ({exc}); use more runs per "
                        "session, or another decoder") from exc
    if names[: D + 1] != columns[: D + 1]:
        raise DataError(f"ridge: {what} has no training trials")
    return betas[: D + 1].cpu().numpy()


def fold_maps(cv: FoldAccumulator, total: glm.NormalEquations, columns: list[str], D: int,
              regions: list[tuple[np.ndarray | None, int]]) -> list[FoldMaps]:
    """Per fold: voxels selected from the other folds' runs, and both maps there.

    Parameters
    ----------
    cv : FoldAccumulator
        The cross-validation folds of the pass.
    total : NormalEquations
        All runs.
    columns : list of str
        The latent space's model (``z1..zD``, ``face``, then the other regressors).
    D : int
    regions : list of (mask or None, n_voxels)
        Each region's mask over the analysed voxels (None: all) and how many voxels it decodes.

    Returns
    -------
    list of FoldMaps
    """
    zcols = columns[:D]
    parts = cv.folds(total)  # the last one derived from the total
    out = []
    for k, part in enumerate(parts):
        what = f"cross-validation fold {k + 1}"
        rest = subtract(total, [part])
        model = [c for c in columns if c in set(present_columns(rest))]
        if model[:D + 1] != columns[:D + 1]:
            raise DataError(f"ridge: the runs outside {what} have no training trials")
        try:
            F = glm.whiten(rest, model, tested=zcols).f_statistic().cpu().numpy()
        except DataError as exc:
            raise DataError(f"ridge: the runs outside {what} cannot be fitted ({exc})") from exc
        score = np.nan_to_num(F, nan=-np.inf)
        selected = [decode.select_voxels(score, n, m) if n >= 1 and (m is None or m.any())
                    else np.zeros(0, np.int64) for m, n in regions]
        index = np.unique(np.concatenate(selected))
        out.append(FoldMaps(index, _maps(voxels(rest, index), columns, D, f"the runs outside {what}"),
                            _maps(voxels(part, index), columns, D, what), selected))
        del rest
    return out


def choose_region_ridge(folds: list[FoldMaps], region: int, train_latents: np.ndarray,
                        z_mean: np.ndarray) -> tuple[float, np.ndarray, int]:
    """The ridge penalty of one region.

    Parameters
    ----------
    folds : list of FoldMaps
        :func:`fold_maps`; ``region`` is the region's position in the list given to it.
    train_latents : array of shape (N_train, D)
    z_mean : array of shape (D,)

    Returns
    -------
    lam : float
    scores : ndarray of shape (len(ridge.RIDGE_GRID),)
        Cross-validated pairwise identification per penalty.
    n_probes : int
        Probe images the score rests on.
    """
    train, held = [], []
    for f in folds:
        at = np.searchsorted(f.index, f.selected[region])
        train.append(f.train[:, at])
        held.append(f.held[:, at])
    probes = ridge.probe_latents(train_latents, z_mean)
    lam, scores = ridge.choose_ridge(train, held, probes, train[0].shape[0] - 1)
    return lam, scores, len(probes)
