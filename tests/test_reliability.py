"""Split-half reliability and noise ceiling against hand-computed cases and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode.errors import DataError
from bids_facedecode.reliability import (
    noise_ceiling,
    pattern_split_half,
    spearman_brown,
    voxel_split_half,
)


def test_hand_computed_small_case():
    # 3 images x 2 voxels
    b1 = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    b2 = np.array([[1.0, 1.0], [3.0, 0.0], [2.0, 1.0]])
    # voxel 0: deviations (-1, 0, 1) and (-1, 1, 0): r = 1 / sqrt(2 * 2) = 0.5
    # voxel 1: deviations (-1/3, 2/3, -1/3) and (1/3, -2/3, 1/3): r = -1
    np.testing.assert_allclose(voxel_split_half(b1, b2), [0.5, -1.0])
    np.testing.assert_allclose(spearman_brown([0.5, 0.0]), [2 / 3, 0.0])
    # noise ceiling, voxel 0: cov = 1/2, noise_half = ((0)^2 + (-1)^2 + 1^2) / (2*2) = 1/2
    # NC = 0.5 / (0.5 + 0.25) = 2/3; voxel 1: cov < 0 -> signal 0 -> NC 0
    np.testing.assert_allclose(noise_ceiling(b1, b2), [2 / 3, 0.0])
    # pattern r of image 0: (1, 0) vs (1, 1): the second is constant -> NaN
    # image 1: (2, 1) vs (3, 0): deviations (0.5, -0.5) and (1.5, -1.5): r = 1
    # image 2: (3, 0) vs (2, 1): deviations (1.5, -1.5) and (0.5, -0.5): r = 1
    pr = pattern_split_half(b1, b2)
    assert np.isnan(pr[0]) and pr[1] == pytest.approx(1.0) and pr[2] == pytest.approx(1.0)


def test_closed_form_signal_and_noise():
    """Signal variance 1, half-noise variance 0.5: r = 1/1.5, NC = 1/(1 + 0.25) = SB(r) = 0.8."""
    rng = np.random.default_rng(0)
    n, v = 20000, 3
    signal = rng.normal(size=(n, v))
    b1 = signal + rng.normal(scale=np.sqrt(0.5), size=(n, v))
    b2 = signal + rng.normal(scale=np.sqrt(0.5), size=(n, v))
    r = voxel_split_half(b1, b2)
    np.testing.assert_allclose(r, 1 / 1.5, atol=0.01)
    np.testing.assert_allclose(noise_ceiling(b1, b2), 0.8, atol=0.01)
    np.testing.assert_allclose(spearman_brown(r), 0.8, atol=0.01)
    # pure noise: ceiling near 0
    nc0 = noise_ceiling(rng.normal(size=(n, v)), rng.normal(size=(n, v)))
    assert np.all(nc0 < 0.02)


def test_pattern_matches_numpy_and_nan_rows_are_ignored(rng):
    b1, b2 = rng.normal(size=(6, 50)), rng.normal(size=(6, 50))
    np.testing.assert_allclose(pattern_split_half(b1, b2),
                               [np.corrcoef(a, b)[0, 1] for a, b in zip(b1, b2, strict=True)])
    full = voxel_split_half(b1[:5], b2[:5])
    b1[5] = np.nan  # image 6 absent from half 1
    np.testing.assert_allclose(voxel_split_half(b1, b2), full)
    b1[:4] = np.nan
    with pytest.raises(DataError, match="at least 3"):
        noise_ceiling(b1, b2)
    with pytest.raises(DataError, match="shape"):
        voxel_split_half(b1, b2[:, :3])
