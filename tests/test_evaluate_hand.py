"""Reconstruction-quality metrics on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode import evaluate as ev


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


def test_gender_binomial_p_hand_case():
    # 4 items, 3 correct: one-sided binomial p = P(K >= 3 | n=4, 1/2) = (4 + 1) / 16
    axis, mid = np.array([1.0, 0.0]), np.zeros(2)
    decoded = np.array([[1.0, 5.0], [2.0, -1.0], [-1.0, 0.0], [-3.0, 2.0]])
    is_male = np.array([True, True, False, True])
    acc, n, p = ev.gender_accuracy(decoded, is_male, axis, mid)
    assert (acc, n) == (0.75, 4) and p == pytest.approx(5 / 16)
