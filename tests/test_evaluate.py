"""Metrics on hand-computed cases and brute-force references."""

from __future__ import annotations

import itertools

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
    # 4! = 24 <= n_perm: every permutation is enumerated, the p-value is exact
    assert ev.identification_permutation_p(decoded, true, n_perm=24) == pytest.approx(exact)
    p = ev.identification_permutation_p(decoded, true, n_perm=20000, rng=np.random.default_rng(2))
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


def test_constant_vectors_are_rejected():
    with pytest.raises(DataError, match="zero variance"):
        ev.pairwise_identification(np.ones((3, 4)), E[:3])


# the null decoder: every decoded vector is the training mean r
R_MEAN = np.array([0.0, 0.0, 0.0, 1.0])
TYPICAL = np.array([[0.0, 0.0, 0.0, 3.0], [1.0, 0.0, 0.0, 2.0], [2.0, 0.0, 0.0, 1.0]])


def test_uncentred_identification_measures_typicality_centred_does_not():
    # corr(r, z0) = 1 > corr(r, z1) = 1.25/sqrt(.75*2.75) > corr(r, z2) = .25/sqrt(.75*2.75):
    # uncentred, a decoder that returns r "identifies" the most typical face against every other
    decoded = np.tile(R_MEAN, (3, 1))
    per_item, mean = ev.pairwise_identification(decoded, TYPICAL)
    np.testing.assert_allclose(per_item, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(ev.nway_identification(decoded, TYPICAL).per_item, [1, 0, 0])
    # centred on r, the decoded vectors are zero: they tie with every candidate
    per_item, mean = ev.pairwise_identification(decoded, TYPICAL, reference=R_MEAN)
    np.testing.assert_allclose(per_item, 0.5)
    np.testing.assert_allclose(ev.nway_identification(decoded, TYPICAL, R_MEAN).per_item, 1 / 3)


def test_centred_identification_is_that_of_the_deviations():
    r = np.array([5.0, -2.0, 7.0, 1.0])
    true, decoded = r + E[:3], r + E[[1, 0, 2]]
    per_item, _ = ev.pairwise_identification(decoded, true, reference=r)
    np.testing.assert_allclose(per_item, [0.25, 0.25, 1.0])  # the one-hot hand example above
    C = ev.correlation_matrix(decoded, true, r)
    np.testing.assert_allclose(C, [[-1 / 3, 1, -1 / 3], [1, -1 / 3, -1 / 3], [-1 / 3, -1 / 3, 1]])
    with pytest.raises(DataError, match="reference has 3"):
        ev.pairwise_identification(decoded, true, reference=r[:3])


def test_nway_identification_and_ranks_hand_example():
    true = E[:3]
    decoded = np.array([E[1], E[0] + E[1], E[2]])
    # item 0: candidate 1 is best -> 0; item 1: candidates 0 and 1 tie at the top -> 1/2;
    # item 2: right -> 1
    per_item, mean = ev.nway_identification(decoded, true)
    np.testing.assert_allclose(per_item, [0.0, 0.5, 1.0])
    assert mean == pytest.approx(0.5)
    S = ev.nway_scores(decoded, true)
    np.testing.assert_allclose(S.sum(axis=1), 1.0)
    # ranks (1 = best, ties averaged): item 0: candidate 0 ties with 2 behind 1 -> 2.5;
    # item 1: candidates 0 and 1 share ranks 1-2 -> 1.5; item 2: 1
    R = ev.identification_ranks(decoded, true)
    np.testing.assert_allclose(np.diagonal(ev.ranks_from_pairwise(R)), [2.5, 1.5, 1.0])


def test_permutation_test_exact_null_mean_and_shared_permutations():
    true = E[:3]
    R = ev.identification_ranks(true, true)  # perfect: only the identity reaches 1
    S = ev.nway_scores(true, true)
    t = ev.permutation_test(np.stack([R, S]), np.arange(3), n_perm=1000)
    assert t.exact and t.n_perm == 6
    np.testing.assert_allclose(t.observed, [1.0, 1.0])
    np.testing.assert_allclose(t.p, [1 / 6, 1 / 6])
    np.testing.assert_allclose(t.chance, [0.5, 1 / 3])
    t = ev.permutation_test(R, np.arange(3), n_perm=5, rng=0)  # 3! > 5: Monte-Carlo
    assert not t.exact and t.p[0] in {k / 6 for k in range(1, 7)}
    with pytest.raises(DataError, match="n_perm"):
        ev.permutation_test(R, np.arange(3), n_perm=0)


def test_monte_carlo_blocks_match_the_exact_p(monkeypatch):
    rng = np.random.default_rng(11)
    true = rng.standard_normal((7, 5))
    decoded = true + 4.0 * rng.standard_normal((7, 5))
    R = ev.identification_ranks(decoded, true)
    exact = ev.permutation_test(R, np.arange(7), n_perm=5040)
    assert exact.exact
    monkeypatch.setattr(ev, "PERM_BLOCK", 1000)  # several blocks, the last one partial
    mc = ev.permutation_test(R, np.arange(7), n_perm=4500, rng=3)  # 4500 < 7!
    assert not mc.exact and mc.n_perm == 4500
    assert mc.p[0] == pytest.approx(exact.p[0], abs=0.005)
    assert 0.01 < exact.p[0] < 0.9


def test_imagery_chance_is_the_exact_mean_of_its_null():
    test = E
    decoded = np.array([E[2], E[0] + 0.5 * E[1], E[3]])
    # R rows: trial 0 [1/3, 1/3, 1, 1/3]; trial 1 [1, 2/3, 1/6, 1/6]; trial 2 [1/3, 1/3, 1/3, 1]
    imagined = np.array([2, 1, 1])  # face 1 imagined twice
    R, _ = ev.imagery_ranks(decoded, imagined, test)
    np.testing.assert_allclose(R, [[1 / 3, 1 / 3, 1, 1 / 3], [1, 2 / 3, 1 / 6, 1 / 6],
                                   [1 / 3, 1 / 3, 1 / 3, 1]])
    # null: the arrangements (2,1,1), (1,2,1), (1,1,2) of the labels, two permutations each,
    # score 2/3, 5/18 and 4/9: mean 25/54, and 2 of 6 reach the observed 2/3
    assert ev.imagery_identification(decoded, imagined, test).mean == pytest.approx(2 / 3)
    assert ev.imagery_chance(decoded, imagined, test) == pytest.approx(25 / 54)
    assert ev.imagery_permutation_p(decoded, imagined, test, n_perm=100) == pytest.approx(1 / 3)
    t = ev.permutation_test(R, imagined, n_perm=100)
    assert t.chance[0] == pytest.approx(25 / 54) and t.exact
    # each face imagined once: the null mean is 0.5 again
    assert ev.imagery_chance(decoded, np.array([2, 1, 0]), test) == pytest.approx(0.5)
