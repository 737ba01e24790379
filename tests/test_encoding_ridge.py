"""Ridge forward maps from normal equations, against numpy closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bids_facedecode import encoding_ridge
from bids_facedecode.glm import NormalEquations


def _ne(X, Y, names):
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return NormalEquations(xtx=t(X.T @ X), xty=t(X.T @ Y), yty=t((Y * Y).sum(0)),
                           n_obs=X.shape[0], n_nuisance=0, names=list(names),
                           x_ss=t((X * X).sum(0)))


def _data(rng, n=120, d=20, v=30, noise=3.0):
    Z = rng.normal(size=(n, d))
    X = np.column_stack([Z, np.ones(n)])                      # latents + "face"
    W = np.vstack([rng.normal(size=(d, v)) * 0.3, rng.normal(size=(1, v))])
    Y = X @ W + noise * rng.normal(size=(n, v))
    names = [f"z{k + 1}" for k in range(d)] + ["face"]
    return X, Y, W, names


def test_ridge_betas_and_heldout_error_match_numpy():
    rng = np.random.default_rng(0)
    X, Y, _, names = _data(rng)
    ne = _ne(X, Y, names)
    zc = names[:-1]
    b, got_names = encoding_ridge.ridge_betas(ne, names, zc, 0.5)
    A = X.T @ X
    P = np.diag([1.0] * 20 + [0.0])
    want = np.linalg.solve(A + 0.5 * np.diag(A)[:20].mean() * P, X.T @ Y)
    np.testing.assert_allclose(b.numpy(), want, rtol=1e-10)
    assert got_names == names
    Xh, Yh, _, _ = _data(np.random.default_rng(1))
    sse = encoding_ridge.heldout_sse(_ne(Xh, Yh, names), b, names).numpy()
    np.testing.assert_allclose(sse, ((Yh - Xh @ want) ** 2).sum(0), rtol=1e-9)
    sub, _ = encoding_ridge.ridge_betas(ne, names, zc, 0.5, voxels=np.array([3, 7]))
    np.testing.assert_allclose(sub.numpy(), want[:, [3, 7]], rtol=1e-10)


def test_cross_validation_shrinks_noisy_maps_and_not_clean_ones():
    rng = np.random.default_rng(2)
    for noise, expect_shrink in ((6.0, True), (0.05, False)):
        X, Y, W, names = _data(rng, noise=noise)
        halves = [_ne(X[:60], Y[:60], names), _ne(X[60:], Y[60:], names)]
        folds = [(halves[0], halves[1]), (halves[1], halves[0])]
        lam, err = encoding_ridge.choose_penalty(folds, names, names[:-1])
        assert err.shape == (len(encoding_ridge.DEFAULT_GRID), Y.shape[1])
        assert (np.median(lam) > 0) == expect_shrink
        full = _ne(X, Y, names)
        maps = encoding_ridge.ridge_maps(full, names, names[:-1], names, lam)
        ols = np.linalg.solve(X.T @ X, X.T @ Y)
        err_ridge = ((maps[:-1] - W[:-1]) ** 2).sum()
        err_ols = ((ols[:-1] - W[:-1]) ** 2).sum()
        if expect_shrink:
            assert err_ridge < 0.8 * err_ols      # closer to the true weights than OLS
        else:
            np.testing.assert_allclose(maps, ols, rtol=1e-8)


def test_errors():
    X, Y, _, names = _data(np.random.default_rng(3))
    ne = _ne(X, Y, names)
    with pytest.raises(Exception, match="not in the model"):
        encoding_ridge.ridge_betas(ne, names + ["nope"], names[:-1], 1.0)
    with pytest.raises(Exception, match=">= 0"):
        encoding_ridge.ridge_betas(ne, names, names[:-1], -1.0)
