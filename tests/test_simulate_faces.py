"""Tests of the procedural face generator."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode.simulate.faces import (
    GENDER_INDEX,
    PARAM_NAMES,
    face_corpus,
    render_faces,
    sample_face_params,
)


def test_param_names_and_gender_index():
    assert 16 <= len(PARAM_NAMES) <= 24
    assert len(set(PARAM_NAMES)) == len(PARAM_NAMES)
    assert PARAM_NAMES[GENDER_INDEX] == "gender"


def test_sample_params_distribution():
    rng = np.random.default_rng(0)
    p = sample_face_params(20000, rng)
    assert p.shape == (20000, len(PARAM_NAMES)) and p.dtype == np.float32
    g = p[:, GENDER_INDEX]
    assert set(np.unique(g)) == {0.0, 1.0}
    assert abs(g.mean() - 0.5) < 0.02
    others = np.delete(p, GENDER_INDEX, axis=1)
    np.testing.assert_allclose(others.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(others.std(0), 1.0, atol=0.05)
    # hair length is correlated with gender (women: longer hair), beard with men
    hl = p[:, PARAM_NAMES.index("hair_length")]
    assert np.corrcoef(hl, g)[0, 1] < -0.7
    assert np.corrcoef(p[:, PARAM_NAMES.index("beard")], g)[0, 1] > 0.6


def test_sample_params_forced_gender():
    g = np.array([1, 0, 1, 0, 0], dtype=float)
    p = sample_face_params(5, np.random.default_rng(1), gender=g)
    np.testing.assert_array_equal(p[:, GENDER_INDEX], g)
    with pytest.raises(ValueError, match="gender"):
        sample_face_params(3, np.random.default_rng(1), gender=np.array([1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="gender"):
        sample_face_params(3, np.random.default_rng(1), gender=np.array([1.0, 0.0]))


@pytest.mark.parametrize("size", [64, 128])
def test_render_shape_range_determinism(size):
    imgs, params = face_corpus(12, seed=5, size=size)
    assert imgs.shape == (12, size, size, 3) and imgs.dtype == np.float32
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0
    again = render_faces(params, size)
    np.testing.assert_array_equal(imgs, again)
    # same seed -> same corpus; different seed -> different faces
    imgs2, params2 = face_corpus(12, seed=5, size=size)
    np.testing.assert_array_equal(params, params2)
    imgs3, _ = face_corpus(12, seed=6, size=size)
    assert np.abs(imgs - imgs3).mean() > 0.02
    # faces differ from each other, and every image is non-trivial
    assert imgs.std(axis=(1, 2, 3)).min() > 0.05
    assert np.abs(imgs[0] - imgs[1]).mean() > 0.02


def test_render_is_batch_independent():
    _, params = face_corpus(7, seed=3)
    whole = render_faces(params)
    parts = np.concatenate([render_faces(params[:3]), render_faces(params[3:])])
    np.testing.assert_array_equal(whole, parts)


def test_render_bad_params():
    with pytest.raises(ValueError, match="params"):
        render_faces(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="size"):
        render_faces(np.zeros((2, len(PARAM_NAMES))), size=8)


def test_every_parameter_changes_the_image():
    base = np.zeros((1, len(PARAM_NAMES)), dtype=np.float32)
    base[0, GENDER_INDEX] = 1.0
    ref = render_faces(base)
    for j, name in enumerate(PARAM_NAMES):
        moved = base.copy()
        moved[0, j] = 0.0 if j == GENDER_INDEX else 1.5
        diff = np.abs(render_faces(moved) - ref)
        assert diff.max() > 0.04, name  # a visible change somewhere
        assert diff.mean() > 1e-4, name


def test_gender_is_linearly_decodable_from_pixels():
    """A ridge classifier on 32x32 grey pixels beats chance by far, no single pixel does."""
    imgs, params = face_corpus(3000, seed=11)
    g = params[:, GENDER_INDEX]
    x = imgs.reshape(len(imgs), 32, 2, 32, 2, 3).mean(axis=(2, 4)).reshape(len(imgs), -1)
    train, test = slice(0, 2000), slice(2000, None)
    mu = x[train].mean(0)
    xt = x[train] - mu
    y = 2.0 * g[train] - 1.0
    w = np.linalg.solve(xt.T @ xt + 10.0 * np.eye(xt.shape[1]), xt.T @ y)
    acc = np.mean(((x[test] - mu) @ w > 0) == (g[test] == 1.0))
    assert acc > 0.9
    # no single pixel/channel separates gender perfectly (best threshold accuracy < 0.95)
    best = 0.0
    xs, gs = x[train], g[train] == 1.0
    for j in range(xs.shape[1]):
        col = xs[:, j]
        thr = np.median(col)
        a = np.mean((col > thr) == gs)
        best = max(best, a, 1 - a)
    assert best < 0.95
