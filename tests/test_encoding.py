"""Encoding accuracy per space: hand-computed cases, scipy references and calibrated nulls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bids_facedecode import encoding
from bids_facedecode.errors import DataError


def test_predict_patterns_adds_the_face_row_wherever_it_is():
    Z = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    W = np.array([[5.0, 5.0, 5.0],      # face first
                  [1.0, 0.0, 2.0],
                  [0.0, 1.0, -1.0]])
    got = encoding.predict_patterns(Z, W, face_index=0)
    want = np.array([[6.0, 5.0, 7.0], [5.0, 7.0, 3.0], [4.0, 6.0, 2.0]])
    np.testing.assert_allclose(got, want)
    W_last = np.vstack([W[1:], W[:1]])
    np.testing.assert_allclose(encoding.predict_patterns(Z, W_last, face_index=2), want)


def test_scores_match_hand_values_and_scipy():
    B = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0], [4.0, 2.0]])
    P = np.array([[1.0, 0.0], [2.0, 1.0], [2.0, 0.0], [5.0, 1.0]])
    s = encoding.encoding_scores(B, P)
    assert s.r[0] == pytest.approx(stats.pearsonr(B[:, 0], P[:, 0])[0])
    # R² = 1 − SSE/SST: SSE = 0 + 0 + 1 + 1 = 2, SST = 2.25 + .25 + .25 + 2.25 = 5
    assert s.r2[0] == pytest.approx(1 - 2 / 5)
    assert np.isnan(s.r[1]) and np.isnan(s.r2[1])    # a constant voxel has no score
    rng = np.random.default_rng(0)
    B, P = rng.normal(size=(20, 50)), rng.normal(size=(20, 50))
    s = encoding.encoding_scores(B, P)
    want = [stats.pearsonr(B[:, v], P[:, v])[0] for v in range(50)]
    np.testing.assert_allclose(s.r, want, atol=1e-12)


def test_ceiling_normalisation_and_its_floor():
    s = encoding.EncodingScores(np.array([0.4, 0.4, 0.3]), np.array([0.16, 0.1, 0.09]))
    n = encoding.ceiling_normalised(s, np.array([0.64, 0.05, np.nan]), floor=0.1)
    np.testing.assert_allclose(n.r, [0.5, np.nan, np.nan])
    np.testing.assert_allclose(n.r2, [0.25, np.nan, np.nan])


def _simulated(rng, n=20, v=300, d=6, snr=1.0):
    Z = rng.normal(size=(n, d))
    W = np.vstack([rng.normal(size=(d, v)), np.full((1, v), 2.0)])
    B = encoding.predict_patterns(Z, W, face_index=d) + rng.normal(size=(n, v)) / snr
    return Z, W, B


def test_permutation_null_is_centred_on_zero_and_uniform():
    ps, means = [], []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        _, W, B = _simulated(rng)
        Z_other = rng.normal(size=(B.shape[0], W.shape[0] - 1))   # latents unrelated to B
        obs, null, p = encoding.permutation_null(B, encoding.predict_patterns(Z_other, W, 6),
                                                 n_perm=199, rng=seed)
        ps.append(p)
        means.append(null.mean())
    assert abs(np.mean(means)) < 0.01
    assert stats.kstest(ps, "uniform").pvalue > 0.01


def test_permutation_null_detects_a_space_that_carries_the_signal():
    rng = np.random.default_rng(1)
    Z, W, B = _simulated(rng, snr=0.5)
    obs, _, p = encoding.permutation_null(B, encoding.predict_patterns(Z, W, 6), 199, rng=1)
    assert obs > 0.2 and p == pytest.approx(1 / 200)


def test_paired_comparison_by_hand_with_exact_sign_flips():
    B = np.array([[0.0], [1.0], [2.0]])          # SST = 2
    Pa = np.array([[0.0], [1.0], [1.0]])         # squared errors 0, 0, 1
    Pb = np.array([[1.0], [1.0], [0.0]])         # squared errors 1, 0, 4
    res = encoding.paired_comparison(B, Pa, Pb, n_perm=8)
    assert res.r2_a == pytest.approx(0.5) and res.r2_b == pytest.approx(-1.5)
    # d = (1 − 0, 0 − 0, 4 − 1) / 2 = (0.5, 0, 1.5); of the 8 sign flips, |Σ ± d| >= 2 for 4
    assert res.difference == pytest.approx(2.0) and res.p == pytest.approx(4 / 8)


def test_paired_comparison_picks_the_generating_space_and_is_calibrated_when_equal():
    rng = np.random.default_rng(2)
    Z, W, B = _simulated(rng, snr=0.5)
    good = encoding.predict_patterns(Z, W, 6)
    bad = encoding.predict_patterns(rng.normal(size=Z.shape), W, 6)
    res = encoding.paired_comparison(B, good, bad, n_perm=499, rng=0)
    assert res.difference > 0.5 and res.p < 0.01
    flipped = encoding.paired_comparison(B, bad, good, n_perm=499, rng=0)
    assert flipped.difference == pytest.approx(-res.difference) and flipped.p < 0.01
    ps = []
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        Z, W, B = _simulated(rng, snr=0.5)
        noisy = [encoding.predict_patterns(Z + 1.5 * rng.normal(size=Z.shape), W, 6)
                 for _ in range(2)]                      # two equally good spaces
        ps.append(encoding.paired_comparison(B, *noisy, n_perm=199, rng=seed).p)
    assert stats.kstest(ps, "uniform").pvalue > 0.01


def test_best_space_map_labels_and_threshold():
    labels, names = encoding.best_space_map(
        {"pca": np.array([0.1, 0.5, np.nan, -0.2]), "vaegan": np.array([0.3, 0.2, 0.4, -0.1])},
        min_score=0.0)
    assert names == ["pca", "vaegan"]
    np.testing.assert_array_equal(labels, [2, 1, 2, 0])


def test_errors_name_the_problem():
    with pytest.raises(DataError, match="rows for 2 latents"):
        encoding.predict_patterns(np.zeros((3, 2)), np.zeros((4, 5)), 2)
    with pytest.raises(DataError, match="at least 3"):
        encoding.encoding_scores(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(DataError, match="differ"):
        encoding.encoding_scores(np.zeros((4, 4)), np.zeros((4, 3)))
    with pytest.raises(DataError, match="n_perm"):
        encoding.permutation_null(np.ones((4, 2)), np.ones((4, 2)), n_perm=0)


def test_region_voxels_keep_the_best_scored_of_each_region():
    from bids_facedecode.workflow.encoding_eval import region_voxels

    nc = np.array([0.9, 0.1, 0.5, np.nan, 0.7, 0.2])
    region = np.array([False, True, True, True, True, False])
    got = region_voxels([("all", None), ("r", region)], nc, n_voxels=2, V=6)
    np.testing.assert_array_equal(got["all"], [0, 4])
    np.testing.assert_array_equal(got["r"], [4, 2])
    assert region_voxels([("r", region)], None, 2, 6)["r"].tolist() == [1, 2, 3, 4]
