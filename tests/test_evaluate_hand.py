"""Reconstruction quality and gender decoding on cases small enough to work out by hand."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy import stats

from bids_facedecode import evaluate as ev
from bids_facedecode import gender, quality
from bids_facedecode.errors import DataError


def test_pixel_correlation_hand_case():
    # 2x2 grey images: a = (0, 1, 2, 3), b = (0, 2, 1, 3); deviations (-1.5, -.5, .5, 1.5) and
    # (-1.5, .5, -.5, 1.5): products 2.25 - .25 - .25 + 2.25 = 4; norms² 5 and 5 -> r = 0.8
    a = np.array([[0.0, 1.0], [2.0, 3.0]])
    b = np.array([[0.0, 2.0], [1.0, 3.0]])
    np.testing.assert_allclose(ev.pixel_correlation(a, b), [0.8])
    # a constant reconstruction has no correlation
    assert np.isnan(ev.pixel_correlation(a, np.ones_like(a))[0])


def test_ssim_hand_case_constant_images():
    # one 7x7 window over constant images (σ = 0): SSIM = (2 μx μy + C1) / (μx² + μy² + C1),
    # C1 = (0.01 * data_range)²
    x, y = np.full((7, 7), 0.5), np.full((7, 7), 0.25)
    c1 = 1e-4
    expected = (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1)
    assert ev.ssim(x, y)[0] == pytest.approx(expected, rel=1e-9)
    assert ev.ssim(x, x)[0] == pytest.approx(1.0)


def test_mean_face_baseline_hand_case():
    # the mean face against two images: itself (r = 1, SSIM = 1) and its 2x2 transpose (r = 0.8),
    # each pixel a 4x4 block (SSIM needs 7x7)
    face = np.kron(np.array([[0.0, 1.0], [2.0, 3.0]]) / 3, np.ones((4, 4)))
    shown = np.stack([face, face.T])[..., None].repeat(3, axis=-1)
    r, s = quality.mean_face_baseline(face[..., None].repeat(3, axis=-1), shown)
    np.testing.assert_allclose(r, [1.0, 0.8])
    assert s[0] == pytest.approx(1.0) and s[1] < 1


# training latents: three males, two females (unbalanced)
TRAIN = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [-3.0, 2.0]])
TRAIN_MALE = np.array([True, True, True, False, False])


def test_gender_axis_hand_example():
    axis, midpoint = gender.gender_axis(TRAIN, TRAIN_MALE)
    np.testing.assert_allclose(axis, [4.0, -1.0])  # (2, 0) - (-2, 1)
    np.testing.assert_allclose(midpoint, [0.0, 0.5])
    with pytest.raises(DataError, match="both male and female"):
        gender.gender_axis(TRAIN, np.ones(5, bool))


def test_gender_rule_is_unbiased_for_a_decoder_that_knows_nothing():
    axis, midpoint = gender.gender_axis(TRAIN, TRAIN_MALE)
    z_mean = TRAIN.mean(axis=0)  # (0.4, 0.4)
    decoded = np.tile(z_mean, (4, 1))  # a decoder with no information returns the training mean
    is_male = np.array([True, True, True, False])
    # the classes' midpoint would call every face male: (z̄ − midpoint)·axis = 1.6 + 0.1 > 0,
    # 3 of these 4 right, 0.75, with no information at all
    assert (decoded - midpoint) @ axis == pytest.approx(np.full(4, 1.7))
    g = gender.gender_accuracy(decoded, is_male, axis, z_mean)
    np.testing.assert_allclose(g.correct, 0.5)  # projections 0: ties
    assert (g.accuracy, g.balanced_accuracy, g.p) == (0.5, 0.5, 1.0)
    assert g.chance == pytest.approx(0.5) and (g.n, g.n_male) == (4, 3)


def test_gender_exact_test_and_chance_hand_cases():
    axis, ref = np.array([1.0, 0.0]), np.zeros(2)
    # calls M, M, F, M against M, M, F, F: 2 males called male of 3 calls, 2 males, 4 items:
    # X ~ hypergeom: P(X = 2) = C(2,2) C(2,1) / C(4,3) = 1/2 = p; accuracy 3/4,
    # balanced (2/2 + 1/2) / 2 = 3/4; null mean of accuracy (3 * 2 + 1 * 2) / 4 / 4 = 1/2
    decoded = np.array([[1.0, 5.0], [2.0, -1.0], [-1.0, 0.0], [3.0, 2.0]])
    g = gender.gender_accuracy(decoded, np.array([True, True, False, False]), axis, ref)
    assert (g.accuracy, g.balanced_accuracy) == (0.75, 0.75)
    assert g.p == pytest.approx(0.5) and g.chance == pytest.approx(0.5)
    # the same calls on an unbalanced set (3 M, 1 F): accuracy 3/4 but a binomial test against
    # 1/2 would give p = 5/16; the label-permutation null mean is 3/4 and p = 1 (X = 2 always)
    calls = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 1.0], [3.0, 0.0]])  # all male
    g = gender.gender_accuracy(calls, np.array([True, True, True, False]), axis, ref)
    assert (g.accuracy, g.balanced_accuracy, g.p) == (0.75, 0.5, 1.0)
    assert g.chance == pytest.approx(0.75)
    assert stats.binomtest(3, 4, 0.5, alternative="greater").pvalue == pytest.approx(
        sum(comb(4, k) for k in (3, 4)) / 16)


def test_gender_p_is_fishers_exact_test():
    rng = np.random.default_rng(0)
    axis, ref = rng.standard_normal(6), np.zeros(6)
    for _ in range(20):
        n = int(rng.integers(6, 25))
        decoded = rng.standard_normal((n, 6))
        is_male = rng.random(n) < rng.uniform(0.2, 0.8)
        if is_male.all() or not is_male.any():
            continue
        called = decoded @ axis > 0
        table = [[np.sum(called & is_male), np.sum(~called & is_male)],
                 [np.sum(called & ~is_male), np.sum(~called & ~is_male)]]
        g = gender.gender_accuracy(decoded, is_male, axis, ref)
        assert g.p == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue)
