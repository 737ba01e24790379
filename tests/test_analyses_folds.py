"""Per-fold normal equations (split halves, CV folds) against a direct least-squares fit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bids_facedecode import glm
from bids_facedecode.errors import DataError
from bids_facedecode.glm import FoldAccumulator, solve_present, subtract, voxels
from bids_facedecode.workflow.folds import cv_folds_of_runs, half_of_runs


def _runs(rng, n_runs=5, T=60, P=4, V=7):
    out = []
    for k in range(n_runs):
        X = rng.normal(size=(T, P))
        if k % 2 == 0:
            X[:, 3] = 0.0  # regressor 4 only occurs in odd-numbered runs (k = 1, 3)
        N = np.column_stack([np.ones(T), np.linspace(-1, 1, T)])
        Y = X @ rng.normal(size=(P, V)) + N @ rng.normal(size=(2, V)) + rng.normal(size=(T, V))
        out.append((X, N, Y.astype(np.float32)))
    return out


def _lstsq(runs, keep_cols):
    """Joint fit with block-diagonal nuisance columns, by numpy."""
    T = sum(len(X) for X, _, _ in runs)
    K = sum(N.shape[1] for _, N, _ in runs)
    big_n = np.zeros((T, K))
    t = k = 0
    for X, N, _ in runs:
        big_n[t:t + len(X), k:k + N.shape[1]] = N
        t += len(X)
        k += N.shape[1]
    X = np.vstack([X[:, keep_cols] for X, _, _ in runs])
    Y = np.vstack([Y for _, _, Y in runs]).astype(np.float64)
    return np.linalg.lstsq(np.hstack([X, big_n]), Y, rcond=None)[0][: len(keep_cols)]


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
def test_fold_accumulator_matches_direct_fits(rng, device):
    runs = _runs(rng)
    names = ["a", "b", "c", "d"]
    folds = [0, 1, 0, 1, 1]
    total = glm.new_normal_equations(names, 7, device)
    acc = FoldAccumulator(folds, "test")
    acc.parts[0] = glm.new_normal_equations(names, 7, device)
    for k, (X, N, Y) in enumerate(runs):
        glm.accumulate_run(total, X, Y, N)
        if folds[k] == 0:  # the last fold is derived, never accumulated
            glm.accumulate_run(acc.parts[0], X, Y, N)
    parts = acc.folds(total)
    # fold 0 (runs 0, 2): regressor d is absent and dropped
    b0, n0 = solve_present(parts[0])
    assert n0 == ["a", "b", "c"]
    np.testing.assert_allclose(b0.cpu().numpy(), _lstsq([runs[0], runs[2]], [0, 1, 2]), atol=1e-8)
    # fold 1 (runs 1, 3, 4) = total - fold 0
    b1, n1 = solve_present(parts[1])
    assert n1 == names and parts[1].n_obs == 180
    np.testing.assert_allclose(b1.cpu().numpy(), _lstsq([runs[1], runs[3], runs[4]], [0, 1, 2, 3]),
                               atol=1e-8)
    # voxel subsets and subtraction
    sub = voxels(parts[1], np.array([6, 2]))
    np.testing.assert_allclose(glm.solve(sub).cpu().numpy(), b1.cpu().numpy()[:, [6, 2]], atol=1e-10)
    back = subtract(total, [parts[1]])
    np.testing.assert_allclose(back.xty.cpu().numpy(), parts[0].xty.cpu().numpy(), atol=1e-8)


def test_fold_labels():
    run = lambda ses: SimpleNamespace(session=ses)  # noqa: E731
    assert half_of_runs([run(None)] * 5) == [0, 1, 0, 1, 0]
    assert cv_folds_of_runs([run("01"), run("01"), run("02")]) == ([0, 0, 1], "session")
    assert cv_folds_of_runs([run(None)] * 4) == ([0, 1, 0, 1], "run-half")
    with pytest.raises(DataError, match="2 runs"):
        cv_folds_of_runs([run(None)])
    with pytest.raises(DataError, match="2 groups"):
        FoldAccumulator([0, 0], "x")


def test_folds_restricted_to_voxels_equal_the_full_folds_sliced(rng):
    """The ridge CV solves its folds only at the decoded voxels: same normal equations there."""
    runs = _runs(rng, n_runs=6)
    names = ["a", "b", "c", "d"]
    labels = [0, 1, 2, 0, 1, 2]
    total = glm.new_normal_equations(names, 7, "cpu")
    acc = FoldAccumulator(labels, "test")
    for f in range(2):
        acc.parts[f] = glm.new_normal_equations(names, 7, "cpu")
    for k, (X, N, Y) in enumerate(runs):
        glm.accumulate_run(total, X, Y, N)
        if labels[k] < 2:
            glm.accumulate_run(acc.parts[labels[k]], X, Y, N)
    index = np.array([1, 4, 6])
    full = acc.folds(total)
    small = acc.folds(voxels(total, index), index)
    for a, b in zip(full, small, strict=True):
        sliced = voxels(a, index)
        for name in ("xtx", "xty", "yty", "x_ss"):
            np.testing.assert_allclose(getattr(b, name).numpy(), getattr(sliced, name).numpy(),
                                       rtol=1e-12, atol=1e-12)
        assert (b.n_obs, b.n_nuisance) == (sliced.n_obs, sliced.n_nuisance)
    with pytest.raises(DataError, match="different voxels"):
        acc.folds(total, index)  # the total not restricted
