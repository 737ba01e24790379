"""The ridge penalty's cross-validated identification: hand cases, an explicit reference, the
choice on regions of known truth, and no test image in the choice."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode import glm
from bids_facedecode.decode import decode_latents, inverse_map, select_voxels
from bids_facedecode.errors import DataError
from bids_facedecode.evaluate import pairwise_identification
from bids_facedecode.glm import FoldAccumulator, solve_present, subtract, voxels
from bids_facedecode.ridge import RIDGE_GRID, choose_ridge, cv_identification, probe_latents
from bids_facedecode.workflow.ridge_inputs import choose_region_ridge, fold_maps

# D = 3 latents + face, 4 voxels; three probes (centred on the training mean)
PROBES = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0], [-1.0, 1.0, 0.0]])
I4 = np.eye(4)


def _cv(train, held, lam, probes=PROBES):
    return cv_identification([train, train], [held, held], probes, 3, grid=(lam,))[0]


def test_cv_identification_hand_cases():
    # decoder I, held-out map I: every probe decodes to itself -> identification 1
    assert _cv(I4, I4, 0.0) == 1.0
    # λ = 1 (x mean diagonal 1): M = I / 2, a scale: identification unchanged
    assert _cv(I4, I4, 1.0) == 1.0
    # two probes z̃₁ = (1, 0, −1), z̃₂ = (0, 1, −1): corr(z̃₁, z̃₂) = 1/2 (Pearson over 3 dims)
    two = PROBES[:2]
    # the held-out fold's map swaps latents 1 and 3: ẑ₁ = (−1, 0, 1) = −z̃₁ correlates −1 with
    # z̃₁, −1/2 with z̃₂ (wrong); ẑ₂ = (−1, 1, 0) correlates 1/2 with z̃₂, −1/2 with z̃₁ (right)
    assert _cv(I4, I4[[2, 1, 0, 3]], 0.0, two) == pytest.approx(0.5)
    # a face response leaking 3 units into latent 1's voxel adds (3, 0, 0) to every decoded
    # vector: ẑ₂ = (3, 1, −1), centred (2, 0, −2) ∝ z̃₁ (wrong); ẑ₁ = (4, 0, −1): corr 5/√28
    # with z̃₁, 1/√28 with z̃₂ (right)
    leak = I4.copy()
    leak[3, 0] = 3.0
    assert _cv(I4, leak, 0.0, two) == pytest.approx(0.5)
    # the same leak in the decoder's own map is inverted away: identification 1
    assert _cv(leak, leak, 0.0, two) == 1.0


def test_cv_identification_matches_an_explicit_computation(rng):
    """Against the explicit inverse (decode.inverse_map) and the decoder (decode.decode_latents)."""
    D, V, n = 4, 9, 12
    tr = [rng.normal(size=(D + 1, V)) for _ in range(3)]
    held = [rng.normal(size=(D + 1, V)) for _ in range(3)]
    Z = rng.normal(size=(n, D))
    X = np.column_stack([Z, np.ones(n)])
    for lam in (0.0, 0.03, 3.0):
        want = np.mean([pairwise_identification(X @ Wf @ inverse_map(Wtr, ridge=lam).numpy()[:, :D],
                                                Z).mean for Wtr, Wf in zip(tr, held, strict=True)])
        assert cv_identification(tr, held, Z, D, grid=(lam,))[0] == pytest.approx(want)
        via_decoder = np.mean([pairwise_identification(
            decode_latents(X @ Wf, Wtr, np.zeros(D), D, ridge=lam), Z).mean
            for Wtr, Wf in zip(tr, held, strict=True)])
        assert cv_identification(tr, held, Z, D, grid=(lam,))[0] == pytest.approx(via_decoder, abs=0.01)


def _region(rng, V, gains, D=8, n_train=400, n_test=20, reps=10):
    """A region of known map: two folds of trial-level data, the full fit, test betas; returns
    the choice and the test set's identification at every penalty of the grid."""
    W = rng.normal(size=(D + 1, V)) * np.append(gains, gains.max())[:, None]
    fits = []
    for _ in range(2):
        Zf = rng.normal(size=(n_train // 2, D))
        X = np.column_stack([Zf, np.ones(len(Zf))])
        fits.append((X, X @ W + rng.normal(size=(len(Zf), V))))
    lstsq = lambda parts: np.linalg.lstsq(np.vstack([p[0] for p in parts]),  # noqa: E731
                                          np.vstack([p[1] for p in parts]), rcond=None)[0]
    W0, W1, Wfull = lstsq(fits[:1]), lstsq(fits[1:]), lstsq(fits)
    lam, scores = choose_ridge([W1, W0], [W0, W1], rng.normal(size=(200, D)), D)
    Zt = rng.normal(size=(n_test, D))
    Bt = np.column_stack([Zt, np.ones(n_test)]) @ W + rng.normal(size=(n_test, V)) / np.sqrt(reps)
    test = [pairwise_identification(decode_latents(Bt, Wfull, np.zeros(D), D, ridge=g), Zt).mean
            for g in RIDGE_GRID]
    return lam, scores, np.array(test)


def test_choice_is_as_good_as_the_plain_inverse_where_it_is_best():
    """Many voxels, a precise but ill-conditioned map (strong shrinkage hurts on the test set):
    the choice loses nothing against the plain inverse."""
    rng = np.random.default_rng(3)
    runs = [_region(rng, 400, np.logspace(0, -2, 8) * 3, n_train=3000) for _ in range(4)]
    assert all(t[-1] < t[0] - 0.05 for _, _, t in runs)  # λ = 10 would hurt
    assert np.mean([t[0] - t[RIDGE_GRID.index(lam)] for lam, _, t in runs]) < 0.01


def test_choice_shrinks_where_the_plain_inverse_is_noisy():
    """Barely more voxels than rows, weak signal: shrinkage wins on the test set, and is chosen."""
    rng = np.random.default_rng(4)
    gains = []
    for _ in range(4):
        lam, scores, test = _region(rng, 12, np.full(8, 0.15))
        assert lam > 0 and scores[RIDGE_GRID.index(lam)] > scores[0]
        gains.append(test[RIDGE_GRID.index(lam)] - test[0])
    assert np.mean(gains) > 0.03


def test_probe_latents_and_bad_input(rng):
    Z = rng.normal(size=(7, 3))
    np.testing.assert_allclose(probe_latents(Z, Z.mean(0), n=4), Z[[0, 2, 4, 6]] - Z.mean(0))
    assert probe_latents(Z, Z.mean(0)).shape == (7, 3)
    with pytest.raises(DataError, match="2 folds"):
        choose_ridge([I4], [I4], PROBES, 3)
    with pytest.raises(DataError, match="probes"):
        choose_ridge([I4, I4], [I4, I4], PROBES[:, :2], 3)
    with pytest.raises(DataError, match="fold maps"):
        choose_ridge([I4, I4], [I4, I4[:, :3]], PROBES, 3)
    # 2 voxels cannot invert 4 rows: λ = 0 is skipped, a penalty is chosen
    lam, scores = choose_ridge([I4[:, :2]] * 2, [I4[:, :2]] * 2, PROBES, 3)
    assert np.isnan(scores[0]) and lam > 0


def test_test_images_never_enter_the_choice():
    """What the pipeline hands the choice (the folds' maps, the training latents) does not move
    when the test images' responses change: λ and its scores stay; the test betas move."""
    rng = np.random.default_rng(5)
    D, V, T = 3, 10, 80
    names = [f"z{d}" for d in range(1, D + 1)] + ["face", "test_a", "test_b"]
    runs = []
    for _ in range(4):
        X = np.column_stack([rng.normal(size=(T, D)), rng.integers(0, 2, (T, 3))]).astype(float)
        runs.append((X, X[:, :D + 1] @ rng.normal(size=(D + 1, V)) + rng.normal(size=(T, V))))
    N = np.ones((T, 1))  # each run's intercept
    train_latents = np.random.default_rng(6).normal(size=(30, D))

    def choose(test_shift):
        total = glm.new_normal_equations(names, V, "cpu")
        cv = FoldAccumulator([0, 0, 1, 1], "cv")
        cv.parts[0] = glm.new_normal_equations(names, V, "cpu")
        for k, (X, Y) in enumerate(runs):
            Y = (Y + X[:, D + 1:] @ test_shift).astype(np.float32)
            glm.accumulate_run(total, X, Y, N)
            if k < 2:
                glm.accumulate_run(cv.parts[0], X, Y, N)
        folds = fold_maps(cv, total, names, D, [(None, 8), (np.arange(V) < 6, 5)])
        assert all(len(f.selected[1]) == 5 and f.selected[1].max() < 6 for f in folds)
        lam, scores, _ = choose_region_ridge(folds, 0, train_latents, train_latents.mean(0))
        return lam, scores, glm.solve(total).numpy()[D + 1:]

    lam0, s0, t0 = choose(np.zeros((2, V)))
    lam1, s1, t1 = choose(rng.normal(size=(2, V)) * 5.0)
    assert lam0 == lam1
    np.testing.assert_allclose(s0, s1)
    assert np.abs(t1 - t0).min() > 0.1  # the test betas did change


def test_a_region_of_noise_scores_chance_because_folds_select_their_own_voxels():
    """Pure-noise data: with voxels selected from the other folds' runs (as the pipeline does)
    the cross-validated identification sits at chance at every penalty; with voxels selected on
    all runs, the held-out fold's noise takes part in the selection and it does not."""
    rng = np.random.default_rng(8)
    D, V, T, n_sel = 4, 400, 120, 12
    names = [f"z{d}" for d in range(1, D + 1)] + ["face"]
    total = glm.new_normal_equations(names, V, "cpu")
    cv = FoldAccumulator([0, 0, 1, 1], "cv")
    cv.parts[0] = glm.new_normal_equations(names, V, "cpu")
    for k in range(4):
        X = np.column_stack([rng.normal(size=(T, D)), rng.integers(0, 2, T)]).astype(float)
        Y = rng.normal(size=(T, V)).astype(np.float32)  # no signal at all
        glm.accumulate_run(total, X, Y, np.ones((T, 1)))
        if k < 2:
            glm.accumulate_run(cv.parts[0], X, Y, np.ones((T, 1)))
    probes = rng.normal(size=(200, D))
    folds = fold_maps(cv, total, names, D, [(None, n_sel)])
    _, nested, _ = choose_region_ridge(folds, 0, probes, np.zeros(D))
    assert np.all(np.abs(nested - 0.5) < 0.08)
    # the double-dipping variant: one selection on all runs, the same voxels for every fold
    sel = select_voxels(glm.whiten(total, names, tested=names[:D]).f_statistic().numpy(), n_sel)
    parts = cv.folds(voxels(total, sel), sel)
    dipped = cv_identification(
        [solve_present(subtract(voxels(total, sel), [p]))[0].numpy()[: D + 1] for p in parts],
        [solve_present(p)[0].numpy()[: D + 1] for p in parts], probes, D)
    assert np.nanmax(dipped) > 0.6 and np.nanmax(dipped) > np.nanmax(nested) + 0.08
