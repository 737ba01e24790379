"""Metrics on hand-computed cases and brute-force references."""

from __future__ import annotations

import itertools
import json
from math import comb

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from bids_facedecode import evaluate as ev
from bids_facedecode.errors import DataError

E = np.eye(4)  # four one-hot "latents": corr(e_i, e_i) = 1, corr(e_i, e_j) = -1/3


def test_pairwise_identification_hand_example():
    true = E[:3]
    decoded = E[[1, 0, 2]]  # items 0 and 1 swapped, item 2 right
    # item 0: corr(d0, t0) = -1/3 < corr(d0, t1) = 1 (loss); = corr(d0, t2) (tie, 1/2) -> 0.25
    per_item, mean = ev.pairwise_identification(decoded, true)
    np.testing.assert_allclose(per_item, [0.25, 0.25, 1.0])
    assert mean == pytest.approx(0.5)
    perfect = ev.pairwise_identification(true, true)
    np.testing.assert_array_equal(perfect.per_item, 1.0)


def test_pairwise_identification_matches_a_loop_and_image_space():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((9, 5, 4, 3))  # images are flattened
    decoded = true + 6.0 * rng.standard_normal(true.shape)
    per_item, _ = ev.pairwise_identification(decoded, true)
    d, t = decoded.reshape(9, -1), true.reshape(9, -1)
    ref = [
        np.mean(
            [
                np.corrcoef(d[i], t[i])[0, 1] > np.corrcoef(d[i], t[j])[0, 1]
                for j in range(9)
                if j != i
            ]
        )
        for i in range(9)
    ]
    np.testing.assert_allclose(per_item, ref)
    assert 0 < per_item.mean() < 1


def test_permutation_p_equals_exhaustive_enumeration():
    rng = np.random.default_rng(1)
    true = rng.standard_normal((4, 6))
    decoded = true + 0.8 * rng.standard_normal((4, 6))
    observed = ev.pairwise_identification(decoded, true).mean
    null = [
        ev.pairwise_identification(decoded, true[list(p)]).mean
        for p in itertools.permutations(range(4))
    ]
    exact = np.mean(np.array(null) >= observed - 1e-12)
    p = ev.identification_permutation_p(decoded, true, n_perm=40000, rng=np.random.default_rng(2))
    assert p == pytest.approx(exact, abs=0.01)
    assert 0.04 < exact < 1  # a case where the p-value is not trivial


def test_permutation_p_is_small_for_perfect_decoding_and_seeded():
    true = np.random.default_rng(3).standard_normal((12, 20))
    p = ev.identification_permutation_p(true, true, n_perm=999, rng=5)
    assert p == pytest.approx(1 / 1000)
    assert ev.identification_permutation_p(
        true * 0.1 + np.random.default_rng(4).standard_normal((12, 20)), true, 500, rng=7
    ) == ev.identification_permutation_p(
        true * 0.1 + np.random.default_rng(4).standard_normal((12, 20)), true, 500, rng=7
    )


def test_gender_axis_and_accuracy_hand_example():
    latents = np.array([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [-3.0, 2.0]])
    is_male = np.array([True, True, False, False])
    axis, midpoint = ev.gender_axis(latents, is_male)
    np.testing.assert_allclose(axis, [4.0, -1.0])  # (2, 0) - (-2, 1)
    np.testing.assert_allclose(midpoint, [0.0, 0.5])
    decoded = np.array([[1.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [0.5, 0.0], [0.2, 0.5]])
    # projections (z - m)·a: 4.5, -4.5, -3.5, 2.5, 0.8 -> male, female, female, male, male
    truth = np.array([True, True, False, False, True])
    acc, n, p = ev.gender_accuracy(decoded, truth, axis, midpoint)
    assert (acc, n) == (0.6, 5)
    assert p == pytest.approx(sum(comb(5, k) for k in range(3, 6)) / 2**5)  # P(X >= 3)
    with pytest.raises(DataError, match="both male and female"):
        ev.gender_axis(latents, np.ones(4, bool))


def test_imagery_identification_hand_example():
    test = E  # 4 test faces
    decoded = np.array([E[2], E[0] + 0.5 * E[1], E[3]])
    imagined = np.array([2, 1, 0])
    per_item, mean = ev.imagery_identification(decoded, imagined, test)
    # trial 0: perfect -> 1; trial 1: imagined face 1 is second best (loses to 0) -> 2/3;
    # trial 2: decoded e3, imagined face 0 ties with faces 1, 2 and loses to 3 -> (0+.5+.5)/3
    np.testing.assert_allclose(per_item, [1.0, 2 / 3, 1 / 3])
    assert mean == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="imagined_index"):
        ev.imagery_identification(decoded, np.array([0, 1, 4]), test)


def test_imagery_permutation_p_extremes():
    rng = np.random.default_rng(8)
    test = rng.standard_normal((6, 10))
    idx = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    p_good = ev.imagery_permutation_p(test[idx], idx, test, n_perm=2000, rng=1)
    assert p_good < 0.005
    p_null = ev.imagery_permutation_p(rng.standard_normal((10, 10)), idx, test, 2000, rng=1)
    assert p_null > 0.01


def test_pixel_correlation_and_ssim():
    rng = np.random.default_rng(9)
    a = rng.random((3, 16, 16, 3))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    r = ev.pixel_correlation(a, b)
    ref = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(r, ref)
    np.testing.assert_allclose(ev.pixel_correlation(a, 2 * a + 1), 1.0)
    s = ev.ssim(a, b)
    ref_s = [
        structural_similarity(x, y, data_range=1.0, channel_axis=-1)
        for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(s, ref_s)
    np.testing.assert_allclose(ev.ssim(a, a), 1.0)
    assert ev.ssim(a[0], b[0]).shape == (1,)
    assert np.all(s < 1)


def test_metrics_json_round_trip():
    rng = np.random.default_rng(10)
    true = rng.standard_normal((8, 12))
    decoded = true + 0.5 * rng.standard_normal((8, 12))
    is_male = np.array([1, 0] * 4, bool)
    gender = ev.gender_axis(rng.standard_normal((40, 12)) + 0.5, np.arange(40) % 2 == 0)
    imgs = rng.random((8, 8, 8, 3))
    m = ev.evaluate_decoding(
        "pca",
        decoded,
        true,
        is_male_test=is_male,
        gender=gender,
        decoded_imagery=decoded[:3],
        imagined_index=np.array([0, 1, 2]),
        reconstructed_images=np.clip(imgs + 0.05, 0, 1),
        true_images=imgs,
        n_perm=200,
        rng=0,
    )
    text = json.dumps(m.to_dict())
    back = ev.Metrics.from_dict(json.loads(text))
    assert back == m
    assert m.pairwise_latent == pytest.approx(ev.pairwise_identification(decoded, true).mean)
    assert m.gender_n == 8 and m.imagery_n == 3 and m.ssim is not None
    assert ev.to_jsonable({"x": np.float32(np.nan), "y": np.arange(2)}) == {"x": None, "y": [0, 1]}


def test_constant_vectors_are_rejected():
    with pytest.raises(DataError, match="zero variance"):
        ev.pairwise_identification(np.ones((3, 4)), E[:3])
