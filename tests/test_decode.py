"""Voxel selection and decoding against hand-made cases and numpy lstsq."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import DEVICES

from bids_facedecode.decode import decode_latents, forward_map, inverse_map, select_voxels
from bids_facedecode.errors import DataError, UsageError


def test_select_voxels_hand_example():
    score = np.array([1.0, 5.0, np.nan, 5.0, 3.0, -2.0, 5.0])
    np.testing.assert_array_equal(select_voxels(score, 4), [1, 3, 6, 4])  # ties: lower index first
    mask = np.array([1, 0, 1, 1, 1, 1, 0], bool)
    np.testing.assert_array_equal(select_voxels(score, 3, mask), [3, 4, 0])
    np.testing.assert_array_equal(select_voxels(score, 5, mask), [3, 4, 0, 5, 2])  # NaN last
    assert select_voxels(score, 2).dtype == np.int64


def test_select_voxels_errors():
    with pytest.raises(DataError, match="only 2 are available"):
        select_voxels(np.arange(5.0), 3, np.array([1, 1, 0, 0, 0], bool))
    with pytest.raises(UsageError, match="n_voxels"):
        select_voxels(np.arange(5.0), 0)
    with pytest.raises(DataError, match="shape"):
        select_voxels(np.arange(5.0), 2, np.ones(4, bool))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("D", "V", "face_index"), [(16, 200, 16), (1024, 3000, 1024), (8, 50, 3)])
def test_noiseless_decoding_recovers_latents(device, D, V, face_index):
    rng = np.random.default_rng(D)
    N = 20
    W = rng.standard_normal((D + 1, V))
    z_mean = rng.standard_normal(D)
    Z = z_mean + rng.standard_normal((N, D))
    keep = [i for i in range(D + 1) if i != face_index]
    B = (Z - z_mean) @ W[keep] + W[face_index]  # test betas: latent part + face response
    Zhat = decode_latents(B, W, z_mean, face_index, device=device)
    assert Zhat.shape == (N, D) and Zhat.dtype == np.float32
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(Zhat, Z, strict=True)]
    assert min(corr) > 0.999
    ref = scipy.linalg.lstsq(W.T, B.T, lapack_driver="gelsy")[0].T  # independent least squares
    np.testing.assert_allclose(Zhat, ref[:, keep] + z_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ref[:, face_index], 1.0, atol=1e-8)


def test_noisy_decoding_equals_lstsq():
    rng = np.random.default_rng(3)
    D, V = 30, 400
    W = rng.standard_normal((D + 1, V))
    B = rng.standard_normal((7, V))
    ref = np.linalg.lstsq(W.T, B.T, rcond=None)[0].T[:, :D]
    np.testing.assert_allclose(decode_latents(B, W, np.zeros(D), D), ref, rtol=1e-5, atol=1e-6)


def test_inverse_map_with_ridge_closed_form():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((10, 60))
    G = W @ W.T
    lam = 0.1 * np.trace(G) / 10
    ref = W.T @ np.linalg.inv(G + lam * np.eye(10))
    np.testing.assert_allclose(inverse_map(W, ridge=0.1).numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(inverse_map(W).numpy(), np.linalg.pinv(W), rtol=1e-8, atol=1e-12)


def test_singular_maps_are_reported():
    W = np.ones((5, 40))
    with pytest.raises(DataError, match="singular"):
        inverse_map(W)
    with pytest.raises(DataError, match="at least as many voxels"):
        inverse_map(np.random.default_rng(0).standard_normal((5, 3)))
    with pytest.raises(DataError, match="voxels"):
        decode_latents(np.zeros((2, 7)), np.ones((5, 40)), np.zeros(4), 4)
    with pytest.raises(DataError, match="z_mean"):
        decode_latents(np.zeros((2, 40)), np.ones((5, 40)), np.zeros(3), 4)


def test_forward_map_extracts_z_and_face_rows():
    names = ["z1", "z2", "face", "test_a"]
    betas = np.arange(4 * 6, dtype=float).reshape(4, 6)
    W = forward_map(torch.as_tensor(betas), names, np.array([5, 0]))
    np.testing.assert_array_equal(W, betas[:3][:, [5, 0]])
    with pytest.raises(DataError, match="z1..zD"):
        forward_map(betas, ["a", "z2", "face", "x"])


def test_end_to_end_design_glm_decode_recovers_simulated_latents():
    """Runs simulated from a known linear brain: design -> GLM -> F selection -> decoding."""
    import pandas as pd
    from glm_reference import f_statistic

    from bids_facedecode import glm
    from bids_facedecode.design import build_run_design
    from bids_facedecode.evaluate import pairwise_identification

    rng = np.random.default_rng(42)
    D, V, n_runs, n_test = 12, 300, 8, 10
    responsive = np.arange(V) < 150
    W_true = rng.standard_normal((D + 1, V)) * responsive
    train_z = {f"h{i}": rng.standard_normal(D) for i in range(n_runs * 120)}
    test_ids = [f"t{i}" for i in range(n_test)]
    test_z = rng.standard_normal((n_test, D))
    z_mean = np.mean(list(train_z.values()), axis=0)
    centred = {k: v - z_mean for k, v in train_z.items()}
    train_keys = iter(train_z)

    frame_times = np.arange(195) * 2.0
    names = None
    ne = None
    for _ in range(n_runs):
        onsets = np.arange(6.0, 360.0, 3.0)
        kinds = rng.choice(["train"] * 4 + ["test", "null"], onsets.size)
        stim = [
            next(train_keys) if k == "train" else (str(rng.choice(test_ids)) if k == "test" else "")
            for k in kinds
        ]
        trials = pd.DataFrame({"onset": onsets, "duration": 1.0, "kind": kinds, "stim_id": stim})
        design = build_run_design(trials, frame_times, centred, test_ids, nuisance_kinds=())
        # the brain: z block and face map W_true, test images respond with their own latents
        B_true = np.vstack([W_true, (test_z - z_mean) @ W_true[:D] + W_true[D]])
        Y = design.shared @ B_true + design.nuisance @ rng.standard_normal(
            (design.nuisance.shape[1], V)
        )
        Y = (Y + 0.5 * rng.standard_normal(Y.shape) + 500).astype(np.float32)
        if ne is None:
            names = design.shared_names
            ne = glm.new_normal_equations(names, V)
        glm.accumulate_run(ne, design.shared, Y, design.nuisance)

    betas = glm.solve(ne)
    F = f_statistic(ne, betas, names[:D]).numpy()
    selected = select_voxels(F, 100)
    assert responsive[selected].all()  # the F map finds the latent-coding voxels
    W = forward_map(betas, names, selected)
    B_test = betas.numpy()[[names.index(f"test_{t}") for t in test_ids]][:, selected]
    Z_hat = decode_latents(B_test, W, z_mean, face_index=D)
    per_item, mean = pairwise_identification(Z_hat, test_z)
    assert mean > 0.95
    assert np.corrcoef(Z_hat.ravel(), test_z.ravel())[0, 1] > 0.9
