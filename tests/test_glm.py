"""Streaming joint GLM against a direct fit of the concatenated runs (numpy, nilearn)."""

from __future__ import annotations

import glm_reference
import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import DEVICES
from nilearn.glm.contrasts import compute_contrast
from nilearn.glm.first_level import run_glm

from bids_facedecode import glm
from bids_facedecode.errors import DataError

P, V, T, R = 12, 300, 90, 4
NAMES = [f"z{i}" for i in range(1, 9)] + ["face", "test_a", "test_b", "oneback"]



def _nuisance(T, k_drift, rng, n_conf=0):
    ft = np.arange(T)
    drift = np.cos(np.pi * np.outer(ft + 0.5, np.arange(1, k_drift + 1)) / T)
    cols = [drift, np.ones((T, 1))]
    if n_conf:
        cols.append(rng.standard_normal((T, n_conf)))
    return np.hstack(cols)


@pytest.fixture
def runs():
    """Runs with scanner-like data: a large per-voxel mean, drift, weak signal, noise."""
    rng = np.random.default_rng(7)
    B = rng.standard_normal((P, V)) * 0.3
    out = []
    for r in range(R):
        n = T + 5 * r  # runs of different lengths
        X = rng.standard_normal((n, P))
        X[:, 8] += 0.5 * X[:, 0]  # correlated regressors
        N = _nuisance(n, 3 + r % 2, rng, n_conf=r % 3)
        Y = (
            800
            + 200 * rng.random(V)
            + X @ B
            + N @ rng.standard_normal((N.shape[1], V)) * 5
            + 2 * rng.standard_normal((n, V))
        )
        out.append((X, Y.astype(np.float32), N))
    return out


def _reference(runs):
    """Joint OLS with a block-diagonal nuisance design (float64 numpy)."""
    X = np.vstack([r[0] for r in runs])
    Y = np.vstack([r[1] for r in runs]).astype(np.float64)
    N = scipy.linalg.block_diag(*[r[2] for r in runs])
    return np.hstack([X, N]), Y


def _fit(runs, device="cpu", precision="double", chunk=None):
    ne = glm.new_normal_equations(NAMES, V, device=device, precision=precision)
    for X, Y, N in runs:
        glm.accumulate_run(ne, X, Y, N, voxel_chunk=chunk)
    return ne


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("precision", "tol"), [("double", 1e-9), ("mixed", 1e-6)])
def test_betas_equal_joint_lstsq(runs, device, precision, tol):
    full, Y = _reference(runs)
    ref = np.linalg.lstsq(full, Y, rcond=None)[0][:P]
    ne = _fit(runs, device, precision)
    betas = glm.solve(ne)
    assert betas.shape == (P, V) and betas.dtype == torch.float64
    assert betas.device.type == device
    assert _rel(betas.cpu().numpy(), ref) < tol
    assert ne.n_obs == full.shape[0]
    assert ne.n_nuisance == full.shape[1] - P
    assert ne.dof == full.shape[0] - full.shape[1]


@pytest.mark.parametrize("device", DEVICES)
def test_statistics_equal_nilearn_run_glm(runs, device):
    full, Y = _reference(runs)
    labels, results = run_glm(Y, full, noise_model="ols", n_jobs=1)
    ne = _fit(runs, device)
    betas = glm.solve(ne)

    # residual variance against explicit residuals
    resid = Y - full @ np.linalg.lstsq(full, Y, rcond=None)[0]
    sigma2_ref = (resid**2).sum(0) / (full.shape[0] - full.shape[1])
    np.testing.assert_allclose(
        glm_reference.residual_variance(ne, betas).cpu().numpy(), sigma2_ref, rtol=1e-8
    )

    # F-test of the z block
    block = np.zeros((8, full.shape[1]))
    block[:, :8] = np.eye(8)
    F_ref = compute_contrast(labels, results, block, stat_type="F").stat()
    F = glm_reference.f_statistic(ne, betas, NAMES[:8], voxel_chunk=64).cpu().numpy()
    np.testing.assert_allclose(F, F_ref, rtol=1e-7)
    assert F.max() > 10  # the signal is there: not a test of two zeros

    # t of face vs baseline, and of a difference contrast given as a mapping
    c = np.zeros(full.shape[1])
    c[NAMES.index("face")] = 1
    t_ref = compute_contrast(labels, results, c, stat_type="t").stat()
    np.testing.assert_allclose(glm_reference.t_statistic(ne, betas, "face").cpu().numpy(), t_ref, rtol=1e-7)
    c2 = np.zeros(full.shape[1])
    c2[NAMES.index("test_a")], c2[NAMES.index("test_b")] = 1, -1
    t2_ref = compute_contrast(labels, results, c2, stat_type="t").stat()
    t2 = glm_reference.t_statistic(ne, betas, {"test_a": 1, "test_b": -1}).cpu().numpy()
    np.testing.assert_allclose(t2, t2_ref, rtol=1e-7)


def test_f_pvalue_matches_scipy(runs):
    from scipy import stats

    ne = _fit(runs)
    F = glm_reference.f_statistic(ne, glm.solve(ne), list(range(8)))
    np.testing.assert_allclose(glm_reference.f_pvalue(F, 8, ne.dof), stats.f.sf(F.numpy(), 8, ne.dof))


def test_chunked_equals_one_shot_and_inputs_untouched(runs):
    Y0 = runs[0][1].astype(np.float64)
    copy = Y0.copy()
    runs64 = [(runs[0][0], Y0, runs[0][2])] + runs[1:]
    one = _fit(runs64)
    chunked = _fit(runs64, chunk=37)
    np.testing.assert_array_equal(Y0, copy)  # float64 input is not modified in place
    for a, b in [(one.xtx, chunked.xtx), (one.xty, chunked.xty), (one.yty, chunked.yty)]:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-12 * float(b.abs().max()))
    np.testing.assert_allclose(glm.solve(one).numpy(), glm.solve(chunked).numpy(), rtol=1e-10)


def test_merging_partial_accumulators(runs):
    whole = _fit(runs)
    part = _fit(runs[:2]).add_(_fit(runs[2:]))
    np.testing.assert_allclose(part.xty.numpy(), whole.xty.numpy(), rtol=1e-12)
    assert (part.n_obs, part.n_nuisance) == (whole.n_obs, whole.n_nuisance)


def test_rank_deficient_nuisance_counts_its_rank(runs):
    X, Y, N = runs[0]
    N_dup = np.hstack([N, N[:, :1] * 2.0])  # a confound equal to a drift column
    ne = glm.new_normal_equations(NAMES, V)
    glm.accumulate_run(ne, X, Y, N_dup)
    assert ne.n_nuisance == np.linalg.matrix_rank(N)


def test_collinear_design_names_the_regressors(runs):
    bad = []
    for X, Y, N in runs:
        X = X.copy()
        X[:, 10] = X[:, 3] - 2 * X[:, 9]  # test_b = z4 - 2 test_a
        bad.append((X, Y, N))
    ne = _fit(bad)
    with pytest.raises(DataError, match="collinear") as err:
        glm.solve(ne)
    for name in ("z4", "test_a", "test_b"):
        assert name in str(err.value)
    assert "z1," not in str(err.value)


def test_regressor_absent_everywhere_is_named(runs):
    bad = [(np.where(np.arange(P) == 11, 0.0, X), Y, N) for X, Y, N in runs]
    with pytest.raises(DataError, match="oneback.*zero in every run"):
        glm.solve(_fit(bad))


def test_regressor_explained_by_nuisance_is_named(runs):
    bad = []
    for X, Y, N in runs:
        X = X.copy()
        X[:, 8] = N[:, 0] * 3 + 1  # face = drift + constant: nothing left after projection
        bad.append((X, Y, N))
    with pytest.raises(DataError, match="face.*explained by the nuisance"):
        glm.solve(_fit(bad))


def test_bad_inputs(runs):
    X, Y, N = runs[0]
    ne = glm.new_normal_equations(NAMES, V)
    with pytest.raises(DataError, match="data have shape"):
        glm.accumulate_run(ne, X, Y[:, :10], N)
    with pytest.raises(DataError, match="design has shape"):
        glm.accumulate_run(ne, X[:, :3], Y, N)
    Yn = Y.copy()
    Yn[3, 17] = np.nan
    with pytest.raises(DataError, match="voxel 17"):
        glm.accumulate_run(ne, X, Yn, N)
    with pytest.raises(DataError, match="no runs"):
        glm.solve(glm.new_normal_equations(NAMES, V))
    with pytest.raises(DataError, match="not in the design"):
        glm_reference.t_statistic(_fit(runs), glm.solve(_fit(runs)), "nope")
