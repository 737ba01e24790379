"""Encoding accuracy of every latent space of a participant, per region, and pairwise comparisons.

Each space's forward map ``W`` (fitted on training trials only) predicts the test images'
response patterns from their latents (:func:`bids_facedecode.encoding.predict_patterns`). The
measured patterns are the test-image betas of the GLM without any latent block, so every
space is scored against the same data. A region's summary is the mean per-voxel score over
its ``n_voxels`` most face-responsive voxels by the face-vs-fixation t of that same model
(training trials only, the same for every space). The split-half noise ceiling is not used to
choose voxels: with 20 test images it is too noisy to tell responsive voxels apart (on the
demo-sized simulation, a tenth of the top-2,000 ceiling voxels were face-selective).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .. import encoding

NC_FLOOR = 0.1   # ceiling below which the ceiling-relative scores are not defined


@dataclass
class SpaceEncoding:
    """Encoding maps of one space over the analysed voxels."""

    space: str
    predicted: np.ndarray        # (N, V) predicted test-image betas
    r: np.ndarray                # (V,)
    r2: np.ndarray               # (V,)
    r_ceiling: np.ndarray        # (V,) r / sqrt(NC); NaN below the floor
    r2_ceiling: np.ndarray       # (V,) R² / NC


def region_voxels(regions: list[tuple[str, np.ndarray | None]], score: np.ndarray | None,
                  n_voxels: int, V: int) -> dict[str, np.ndarray]:
    """Voxel indices each region is scored over: its ``n_voxels`` of highest ``score``.

    Parameters
    ----------
    regions : list of (name, bool mask of shape (V,) or None for all voxels)
    score : array of shape (V,) or None
        A space-neutral ranking from the training data, e.g. the face-vs-fixation t of the GLM
        without latent block (:func:`face_t`); without one every voxel of the region is scored.
    n_voxels : int
        Voxels kept per region (all of a smaller region).
    V : int
        Analysed voxels.

    Returns
    -------
    dict of region name -> int64 indices (by decreasing score when there is one)
    """
    from ..decode import select_voxels

    out = {}
    for name, mask in regions:
        inside = np.ones(V, bool) if mask is None else np.asarray(mask, bool)
        if score is None:
            out[name] = np.flatnonzero(inside)
            continue
        k = min(int(n_voxels), int(inside.sum()))
        out[name] = (select_voxels(np.asarray(score, np.float64), k, mask=inside)
                     if k else np.zeros(0, np.int64))
    return out


def face_t(ne_all) -> np.ndarray:
    """Face-vs-fixation t of every voxel in the GLM without any latent block, shape (V,).

    Training trials enter by the face regressor alone, so the ranking favours no latent space;
    the test images have regressors of their own and do not enter the face contrast.
    """
    from ..glm import stats as glmstats

    other = [n for n in ne_all.names if not n.startswith("z")]
    return glmstats.whiten(ne_all, other).t_statistic("face").cpu().numpy()


def space_encoding(space: str, test_betas: np.ndarray, W: np.ndarray, face_index: int,
                   test_latents_centred: np.ndarray, noise_ceiling: np.ndarray | None,
                   floor: float = NC_FLOOR) -> SpaceEncoding:
    """Predict the test patterns of one space and score them voxel by voxel.

    Parameters
    ----------
    space : str
    test_betas : array of shape (N, V)
    W : array of shape (D+1, V)
        Betas of the space's latent regressors and of ``face`` over all voxels.
    face_index : int
    test_latents_centred : array of shape (N, D)
    noise_ceiling : array of shape (V,) or None
    floor : float

    Returns
    -------
    SpaceEncoding
    """
    pred = encoding.predict_patterns(test_latents_centred, W, face_index)
    scores = encoding.encoding_scores(test_betas, pred)
    if noise_ceiling is None:
        nan = np.full_like(scores.r, np.nan)
        norm = encoding.EncodingScores(nan, nan.copy())
    else:
        norm = encoding.ceiling_normalised(scores, noise_ceiling, floor)
    return SpaceEncoding(space, pred, scores.r, scores.r2, norm.r, norm.r2)


def _mean(a: np.ndarray) -> float:
    return float(np.nanmean(a)) if a.size and np.isfinite(a).any() else float("nan")


def encoding_rows(enc: SpaceEncoding, test_betas: np.ndarray, voxels: dict[str, np.ndarray],
                  n_perm: int, rng: np.random.Generator) -> list[dict]:
    """Tidy rows (metric, roi, value, chance, n, test, p_value, n_voxels) of one space.

    ``encoding_r`` is tested against its permutation null (chance 0, the null's exact mean);
    ``encoding_r2`` and the ceiling-relative values are descriptive.
    """
    rows = []
    for roi, idx in voxels.items():
        base = {"roi": roi, "n_voxels": int(idx.size), "n": int(test_betas.shape[0])}
        if idx.size == 0:
            continue
        value, _, p = encoding.permutation_null(test_betas[:, idx], enc.predicted[:, idx],
                                                n_perm, rng)
        rows.append({"metric": "encoding_r", "value": value, "chance": 0.0,
                     "test": "permutation", "p_value": p, **base})
        for metric, arr in (("encoding_r2", enc.r2), ("encoding_r_ceiling", enc.r_ceiling),
                            ("encoding_r2_ceiling", enc.r2_ceiling)):
            rows.append({"metric": metric, "value": _mean(arr[idx]), "chance": float("nan"),
                         "test": "none", "p_value": float("nan"), **base})
    return rows


def paired_rows(encodings: list[SpaceEncoding], test_betas: np.ndarray,
                voxels: dict[str, np.ndarray], n_perm: int, rng: np.random.Generator
                ) -> list[dict]:
    """Every pair of spaces compared on the mean encoding R² of each region.

    Returns tidy rows ``space_a, space_b, roi, metric, value_a, value_b, difference, test,
    p_value, n_voxels`` (two-sided paired permutation over test images,
    :func:`encoding.paired_comparison`).
    """
    rows = []
    for a, b in combinations(encodings, 2):
        for roi, idx in voxels.items():
            if idx.size == 0:
                continue
            res = encoding.paired_comparison(test_betas[:, idx], a.predicted[:, idx],
                                             b.predicted[:, idx], n_perm, rng)
            rows.append({"space_a": a.space, "space_b": b.space, "roi": roi,
                         "metric": "encoding_r2", "value_a": res.r2_a, "value_b": res.r2_b,
                         "difference": res.difference, "test": "paired sign-flip",
                         "p_value": res.p, "n_voxels": int(idx.size)})
    return rows


def best_space(encodings: list[SpaceEncoding], min_r: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """Voxelwise label (1..K, 0 none) of the space with the highest encoding ``r``."""
    return encoding.best_space_map({e.space: e.r for e in encodings}, min_score=min_r)


def forward_maps(ne_all, latents, test_ids: list[str], first_half=None,
                 grid=None) -> tuple[np.ndarray, dict[str, tuple]]:
    """Space-neutral test betas and every space's forward map over all voxels.

    Parameters
    ----------
    ne_all : NormalEquations
        The participant's accumulated GLM (every space's latent columns side by side).
    latents : JointLatents
    test_ids : list of str
        Test-image identities, in the order of ``latents.test``.
    first_half : NormalEquations, optional
        One half of the runs (the split halves). With it, each space's latent weights are
        ridge-regularised, the penalty of each voxel chosen by cross-validation between the
        halves (:mod:`bids_facedecode.encoding_ridge`); without it they are least squares.
    grid : sequence of float, optional
        Candidate penalties (default :data:`encoding_ridge.DEFAULT_GRID`).

    Returns
    -------
    test_betas : ndarray of shape (N, V)
        Betas of the test images in the GLM without any latent block.
    maps : dict of space -> (W (D+1, V) with the face row last, centred test latents (N, D),
        penalty per voxel (V,))
    """
    from .. import encoding_ridge
    from ..glm import stats as glmstats
    from ..glm import subtract

    other = [n for n in ne_all.names if not n.startswith("z")]
    test_names = [f"test_{t}" for t in test_ids]
    betas, names = glmstats.block_betas(ne_all, other, test_names)
    B = np.full((len(test_names), ne_all.n_voxels), np.nan)
    for i, t in enumerate(test_names):
        if t in names:
            B[i] = betas[names.index(t)].cpu().numpy()
    folds = []
    if first_half is not None:
        second = subtract(ne_all, [first_half])
        folds = [(first_half, second), (second, first_half)]
    maps = {}
    for space in latents.names:
        zcols = latents.z_columns(space)
        columns = zcols + other
        if folds:
            lam, _ = encoding_ridge.choose_penalty(folds, columns, zcols,
                                                   grid or encoding_ridge.DEFAULT_GRID)
            W = encoding_ridge.ridge_maps(ne_all, columns, zcols, zcols + ["face"], lam)
        else:
            lam = np.zeros(ne_all.n_voxels)
            W = glmstats.block_betas(ne_all, columns, zcols + ["face"])[0].cpu().numpy()
        maps[space] = (W, latents.test[space] - latents.means[space], lam)
    return B, maps
