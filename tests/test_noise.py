"""AR(1) noise model: the estimate, its bias correction, and the whitened streamed GLM against
generalised least squares written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import DEVICES
from glm_reference import residual_variance

from bids_facedecode import glm
from bids_facedecode.glm import noise


def _ar1(rng, n, v, rho):
    """Stationary AR(1) noise with unit innovations, shape (n, v)."""
    e = np.empty((n, v))
    e[0] = rng.standard_normal(v) / np.sqrt(1 - rho * rho)
    u = rng.standard_normal((n, v))
    for t in range(1, n):
        e[t] = rho * e[t - 1] + u[t]
    return e


def _drift(n, k):
    ft = np.arange(n)
    return np.hstack([np.cos(np.pi * np.outer(ft + 0.5, np.arange(1, k + 1)) / n), np.ones((n, 1))])


def test_whitening_filter_inverts_the_ar1_correlation():
    rho, n = 0.37, 25
    W = noise.whiten_rows(torch.eye(n, dtype=torch.float64), rho).numpy()
    R = noise.ar1_correlation(rho, n)
    # Var(W e) = W R Wᵀ / (1 − ρ²) = I for unit innovations
    np.testing.assert_allclose(W @ R @ W.T / (1 - rho**2), np.eye(n), atol=1e-12)


@pytest.mark.parametrize("rho", [-0.3, 0.0, 0.45])
def test_expected_lag1_equals_the_trace_formula(rho):
    rng = np.random.default_rng(0)
    n = 40
    Q, _ = np.linalg.qr(np.hstack([_drift(n, 3), rng.standard_normal((n, 4))]))
    M = np.eye(n) - Q @ Q.T
    S = np.diag(np.ones(n - 1), -1)  # eᵀSe = Σ e_t e_{t−1}
    Sig = noise.ar1_correlation(rho, n)
    expected = np.trace(S @ M @ Sig @ M) / np.trace(M @ Sig)
    assert noise.expected_lag1(rho, Q) == pytest.approx(expected, abs=1e-12)


def test_correlation_product_by_recursion_equals_the_dense_product():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((60, 5))
    for rho in (-0.5, 0.0, 0.3, 0.9):
        np.testing.assert_allclose(noise.ar1_correlation_times(rho, A),
                                   noise.ar1_correlation(rho, 60) @ A, atol=1e-12)


def test_pooled_estimate_is_unbiased_where_the_raw_autocorrelation_is_not():
    rng = np.random.default_rng(1)
    n, v, rho = 150, 4000, 0.4
    N = np.hstack([_drift(n, 4), rng.standard_normal((n, 10))])  # 15 columns, like a run's design
    Q = glm.nuisance_basis(torch.from_numpy(N)).numpy()
    Y = 1000 + N @ rng.standard_normal((N.shape[1], v)) * 3 + _ar1(rng, n, v, rho)
    est = noise.estimate_ar1(Y, Q)
    assert est == pytest.approx(rho, abs=0.01)
    e = Y - Q @ (Q.T @ Y)
    raw = noise.lag1_autocorrelation(e)
    assert raw < rho - 0.05  # the residual projection biases the plain estimate by ~(k+1)/T


def test_white_noise_gives_rho_near_zero_and_zero_data_zero():
    rng = np.random.default_rng(2)
    Q = glm.nuisance_basis(torch.from_numpy(_drift(120, 3))).numpy()
    assert abs(noise.estimate_ar1(rng.standard_normal((120, 3000)), Q)) < 0.01
    assert noise.estimate_ar1(np.zeros((120, 10)), Q) == 0.0


def test_sample_voxels():
    assert noise.sample_voxels(10).tolist() == list(range(10))
    s = noise.sample_voxels(100_000)
    assert s.size == noise.AR1_SAMPLE_VOXELS and s[0] == 0 and s[-1] == 99_999


def _gls_reference(runs, rhos):
    """Joint GLS, block-diagonal AR(1) covariance and nuisance, through the inverse square root of
    each run's correlation matrix (Cholesky), not the recursive filter."""
    Xs, Ys, Ns = [], [], []
    for (X, Y, N), rho in zip(runs, rhos, strict=True):
        L = np.linalg.cholesky(noise.ar1_correlation(rho, X.shape[0]) / (1 - rho**2))
        Xs.append(scipy.linalg.solve_triangular(L, X, lower=True))
        Ys.append(scipy.linalg.solve_triangular(L, Y.astype(np.float64), lower=True))
        Ns.append(scipy.linalg.solve_triangular(L, N, lower=True))
    A = np.hstack([np.vstack(Xs), scipy.linalg.block_diag(*Ns)])
    Yw = np.vstack(Ys)
    coef = np.linalg.lstsq(A, Yw, rcond=None)[0]
    rss = ((Yw - A @ coef) ** 2).sum(axis=0)
    return coef[: runs[0][0].shape[1]], rss


def _runs(rng, factored: bool):
    P, V = 29, 250  # 26 factored columns: the factored product is the cheaper one
    B = rng.standard_normal((P, V)) * 0.3
    runs, factors = [], []
    for r in range(3):
        n = 80 + 7 * r
        events = np.zeros((n, 20))
        for j in range(20):
            t0 = 2 + 3 * j + r
            events[t0 : t0 + 4, j] = [0.3, 1.0, 0.6, 0.2][: max(0, min(4, n - t0))]
        weights = np.hstack([rng.standard_normal((20, 25)), np.ones((20, 1))])
        X = np.hstack([events @ weights, rng.standard_normal((n, P - 26))])
        N = np.hstack([_drift(n, 3), rng.standard_normal((n, r))])
        Y = 900 + X @ B + N @ rng.standard_normal((N.shape[1], V)) * 4 + _ar1(rng, n, V, 0.35)
        runs.append((X, Y.astype(np.float32), N))
        factors.append((events, weights) if factored else None)
    return runs, factors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("precision", "factored", "tol"),
                         [("double", False, 1e-9), ("mixed", False, 1e-5), ("mixed", True, 1e-5),
                          ("double", True, 1e-9)])
def test_whitened_accumulation_equals_joint_gls(device, precision, factored, tol):
    rng = np.random.default_rng(3)
    runs, factors = _runs(rng, factored)
    rhos = [0.3, 0.45, -0.1]
    names = [f"c{i}" for i in range(runs[0][0].shape[1])]
    ne = glm.new_normal_equations(names, runs[0][1].shape[1], device, precision=precision)
    glm.accumulate_runs(ne, [(X, Y, N, f, r) for (X, Y, N), f, r in
                             zip(runs, factors, rhos, strict=True)], voxel_chunk=70)
    ref_b, ref_rss = _gls_reference(runs, rhos)
    b = glm.solve(ne).cpu().numpy()
    scale = np.abs(ref_b).max()
    assert np.abs(b - ref_b).max() <= tol * scale * 10
    sigma2 = residual_variance(ne, glm.solve(ne)).cpu().numpy()
    np.testing.assert_allclose(sigma2 * ne.dof, ref_rss, rtol=tol * 100)
    # zero coefficient: the ordinary (white-noise) model, as before
    ne0 = glm.new_normal_equations(names, runs[0][1].shape[1], device, precision=precision)
    glm.accumulate_runs(ne0, [(X, Y, N, f, 0.0) for (X, Y, N), f in zip(runs, factors, strict=True)])
    ols_b, _ = _gls_reference(runs, [0.0, 0.0, 0.0])
    assert np.abs(glm.solve(ne0).cpu().numpy() - ols_b).max() <= tol * scale * 10
