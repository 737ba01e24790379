"""The wls and ridge decoders against closed forms and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode.decode import (
    choose_ridge,
    decode_latents,
    decode_latents_wls,
    ridge_cv_error,
)
from bids_facedecode.errors import DataError
from bids_facedecode.evaluate import pairwise_identification


def test_wls_closed_form_hand_case():
    # D = 1 latent + face, 3 voxels; Σ = diag(1, 4, 1)
    W = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    var = np.array([1.0, 4.0, 1.0])
    b = np.array([[3.0, 2.0, 5.0]])
    # W Σ⁻¹ Wᵀ = [[1 + 4/4, 0], [0, 1]] = [[2, 0], [0, 1]]; b Σ⁻¹ Wᵀ = [3 + 2*2/4, 5] = [4, 5]
    # coefficients = [4/2, 5/1] = [2, 5]; drop face, add mean 10 -> 12
    z = decode_latents_wls(b, W, [10.0], face_index=1, noise_var=var)
    np.testing.assert_allclose(z, [[12.0]], rtol=1e-6)
    # the OLS decoder differs here: W Wᵀ = [[5, 0], [0, 1]], b Wᵀ = [7, 5] -> 7/5 + 10
    np.testing.assert_allclose(decode_latents(b, W, [10.0], face_index=1), [[11.4]], rtol=1e-6)


def test_wls_equal_variances_is_ols(rng):
    W, B = rng.normal(size=(4, 40)), rng.normal(size=(5, 40))
    zm = rng.normal(size=3)
    np.testing.assert_allclose(decode_latents_wls(B, W, zm, 3, np.full(40, 2.5)),
                               decode_latents(B, W, zm, 3), rtol=1e-5, atol=1e-6)


def test_wls_beats_ols_with_heteroscedastic_voxels():
    """Known truth: half the voxels are 30x noisier; weighting recovers the latents better."""
    rng = np.random.default_rng(1)
    D, V, N = 5, 200, 40
    W = np.vstack([rng.normal(size=(D, V)), rng.normal(0.5, 0.1, size=(1, V))])
    Z = rng.normal(size=(N, D))
    sd = np.where(np.arange(V) < V // 2, 0.3, 9.0)
    B = np.hstack([Z, np.ones((N, 1))]) @ W + rng.normal(size=(N, V)) * sd
    ols = decode_latents(B, W, np.zeros(D), D)
    wls = decode_latents_wls(B, W, np.zeros(D), D, sd**2)
    err = lambda zh: float(np.mean((zh - Z) ** 2))  # noqa: E731
    assert err(wls) < 0.5 * err(ols)
    assert pairwise_identification(wls, Z).mean >= pairwise_identification(ols, Z).mean


def test_wls_rejects_bad_variances():
    with pytest.raises(DataError, match="noise variances"):
        decode_latents_wls(np.ones((1, 3)), np.eye(2, 3), [0.0], 1, [1.0, 0.0, 1.0])
    with pytest.raises(DataError, match="3 voxels"):
        decode_latents_wls(np.ones((1, 3)), np.eye(2, 3), [0.0], 1, [1.0, 1.0])


def test_ridge_cv_error_hand_case():
    # k = 2 rows (z1, face), 2 voxels; training map I, held-out map diag(2, 1); var(z1) = 3
    Wtr, Wf, cov = np.eye(2), np.diag([2.0, 1.0]), np.array([[3.0]])
    # λ = 0: M = I, E = diag(1, 0); latent column [1, 0]; C = diag(3, 1) -> error 3
    assert ridge_cv_error([Wtr], [Wf], cov, 0.0, face_index=1) == pytest.approx(3.0)
    # λ = 1 (x mean diag 1): M = I/2, E = diag(0, -1/2); latent column [0, 0] -> 0
    assert ridge_cv_error([Wtr], [Wf], cov, 1.0, face_index=1) == pytest.approx(0.0, abs=1e-12)
    # the face row leaks into the latent: held-out [[1, 0], [1, 1]] at λ = 0:
    # E = [[0, 0], [1, 0]]; latent column [0, 1] weighted by the face's 1 -> 1
    assert ridge_cv_error([Wtr], [np.array([[1.0, 0.0], [1.0, 1.0]])], cov, 0.0, 1) == \
        pytest.approx(1.0)


def test_choose_ridge_follows_the_noise():
    rng = np.random.default_rng(2)
    D, V = 6, 30
    W = rng.normal(size=(D + 1, V))
    cov = np.eye(D)
    # identical folds: the plain inverse is exact
    lam, errs = choose_ridge([W, W], [W, W], cov, D)
    assert lam == 0.0 and errs[0] == pytest.approx(0.0, abs=1e-9)
    # noisy maps from few voxels: shrinkage helps
    noisy = [W + rng.normal(scale=3.0, size=W.shape) for _ in range(4)]
    lam, errs = choose_ridge(noisy[:2], noisy[2:], cov, D)
    assert lam > 0 and np.nanmin(errs) < errs[0]
    with pytest.raises(DataError, match="2 folds"):
        choose_ridge([W], [W], cov, D)


def test_ridge_cv_error_matches_the_explicit_inverse(rng):
    """The eigendecomposition shortcut equals Σ_f tr(E_zᵀ C E_z) with the inverse computed directly."""
    from bids_facedecode.decode import inverse_map

    D, V = 4, 12
    tr = [rng.normal(size=(D + 1, V)) for _ in range(3)]
    held = [rng.normal(size=(D + 1, V)) for _ in range(3)]
    A = rng.normal(size=(D, D))
    cov = A @ A.T
    C = np.zeros((D + 1, D + 1))
    C[:D, :D], C[D, D] = cov, 1.0
    for lam in (0.0, 0.05, 2.0):
        want = 0.0
        for Wtr, Wf in zip(tr, held, strict=True):
            E = Wf @ inverse_map(Wtr, ridge=lam).numpy() - np.eye(D + 1)
            want += np.trace(E[:, :D].T @ C @ E[:, :D])
        assert ridge_cv_error(tr, held, cov, lam, face_index=D) == pytest.approx(want, rel=1e-8)
