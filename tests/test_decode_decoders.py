"""The wls decoder against closed forms and hand-computed cases (ridge: test_ridge.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode.decode import decode_latents, decode_latents_wls
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
