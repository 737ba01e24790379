"""Design matrices against nilearn's own design builder."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import compute_regressor, make_first_level_design_matrix

from bids_facedecode.design import (
    RunDesign,
    build_run_design,
    event_regressors,
    imagery_keys,
    nuisance_kinds_of,
)
from bids_facedecode.errors import DataError, UsageError

D = 6
TEST_IDS = ["t_a", "t_b", "t_c"]
IMG_IDS = ["t_a", "t_c"]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _run(rng, n_scans=150, t_r=2.0):
    """A ds001761-like run: faces every 3 s, test repeats, one-backs, null trials, imagery."""
    onsets = np.arange(4.0, n_scans * t_r - 30, 3.0)
    kinds = rng.choice(["train", "train", "train", "test", "null", "oneback"], onsets.size)
    stim = []
    for k in kinds:
        if k == "train":
            stim.append(f"h{len(stim):04d}")
        elif k == "test":
            stim.append(str(rng.choice(TEST_IDS)))
        else:
            stim.append("")
    trials = pd.DataFrame({"onset": onsets, "duration": 1.0, "kind": kinds, "stim_id": stim})
    imagery = pd.DataFrame(
        {
            "onset": [n_scans * t_r - 26.0],
            "duration": [12.0],
            "kind": ["imagery"],
            "stim_id": ["t_c"],
        }
    )
    trials = pd.concat([trials, imagery], ignore_index=True)
    latents = {
        s: rng.standard_normal(D)
        for s, k in zip(trials.stim_id, trials.kind, strict=True)
        if k == "train"
    }
    frame_times = np.arange(n_scans) * t_r
    return trials, latents, frame_times


def _nilearn_events(trials, latents):
    """One nilearn condition per regressor; z-regressors through the modulation column."""
    rows = []
    for r in trials.itertuples():
        base = {"onset": r.onset, "duration": r.duration}
        if r.kind == "train":
            rows.append({**base, "trial_type": "face", "modulation": 1.0})
            for d in range(D):
                rows.append(
                    {**base, "trial_type": f"z{d + 1}", "modulation": latents[r.stim_id][d]}
                )
        elif r.kind == "test":
            rows.append({**base, "trial_type": f"test_{r.stim_id}", "modulation": 1.0})
        elif r.kind == "imagery":
            rows.append({**base, "trial_type": f"img_{r.stim_id}", "modulation": 1.0})
        elif r.kind != "null":
            rows.append({**base, "trial_type": r.kind, "modulation": 1.0})
    return pd.DataFrame(rows)


def test_event_regressors_match_nilearn_compute_regressor(rng):
    # odd TR, a start offset, zero/short/long durations, events before -24 s and past the end
    frame_times = np.arange(120) * 1.7 + 0.85
    onsets = np.concatenate([[-40.0, -3.0, 0.0], rng.uniform(0, 230, 20), [250.0]])
    durations = np.concatenate([[1.0, 0.0, 0.01], rng.choice([0.0, 1.0, 12.0], 20), [5.0]])
    E = event_regressors(onsets, durations, frame_times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = np.column_stack(
            [
                compute_regressor(([o], [d], [1.0]), "spm", frame_times)[0][:, 0]
                for o, d in zip(onsets, durations, strict=True)
            ]
        )
    assert E.shape == (120, onsets.size)
    np.testing.assert_allclose(E, ref, rtol=0, atol=1e-12)
    assert np.abs(ref).max() > 0.5  # not a trivially-zero comparison


def test_run_design_equals_nilearn_design_matrix(rng):
    trials, latents, frame_times = _run(rng)
    confounds = pd.DataFrame(
        rng.standard_normal((frame_times.size, 2)), columns=["motion_x", "csf"]
    )
    design = build_run_design(
        trials, frame_times, latents, TEST_IDS, IMG_IDS, ("oneback",), confounds
    )
    ref = make_first_level_design_matrix(
        frame_times,
        _nilearn_events(trials, latents),
        hrf_model="spm",
        drift_model="cosine",
        high_pass=1 / 128,
        add_regs=confounds,
    )
    assert isinstance(design, RunDesign)
    assert design.shared_names == (
        [f"z{d}" for d in range(1, D + 1)]
        + ["face", "test_t_a", "test_t_b", "test_t_c", "img_t_a", "img_t_c", "oneback"]
    )
    assert design.face_index == D and design.n_latents == D
    for j, name in enumerate(design.shared_names):
        if name in ref.columns:
            np.testing.assert_allclose(design.shared[:, j], ref[name].to_numpy(), atol=1e-10)
        else:  # imagined identity with no imagery trial in this run
            assert name == "img_t_a"
            assert not design.shared[:, j].any()
    drift_names = [c for c in ref.columns if c.startswith("drift_")] + ["constant"]
    assert design.nuisance_names == drift_names + ["motion_x", "csf"]
    np.testing.assert_allclose(design.nuisance, ref[design.nuisance_names].to_numpy(), atol=1e-10)
    assert len(drift_names) > 2


def test_null_trials_are_the_implicit_baseline(rng):
    trials, latents, frame_times = _run(rng)
    with_null = build_run_design(trials, frame_times, latents, TEST_IDS, IMG_IDS)
    no_null = build_run_design(
        trials[trials.kind != "null"], frame_times, latents, TEST_IDS, IMG_IDS
    )
    assert (trials.kind == "null").any()
    np.testing.assert_array_equal(with_null.shared, no_null.shared)


def test_large_latent_dim_is_linear_in_latents(rng):
    trials, _, frame_times = _run(rng)
    train = trials.stim_id[trials.kind == "train"]
    Z = rng.standard_normal((train.size, 1024))
    latents = dict(zip(train, Z, strict=True))
    design = build_run_design(trials, frame_times, latents, TEST_IDS, IMG_IDS)
    E = event_regressors(trials.onset[trials.kind == "train"], np.ones(train.size), frame_times)
    np.testing.assert_allclose(design.shared[:, :1024], E @ Z, atol=1e-10)
    np.testing.assert_allclose(design.shared[:, 1024], E.sum(axis=1), atol=1e-12)


def test_imagery_per_trial_keys(rng):
    trials, latents, frame_times = _run(rng)
    trials = pd.concat(
        [
            trials,
            pd.DataFrame(
                {"onset": [10.0], "duration": [12.0], "kind": ["imagery"], "stim_id": [""]}
            ),
        ],
        ignore_index=True,
    )
    with pytest.raises(DataError, match="imagined identity"):
        imagery_keys(trials, "identity", "run-01")
    keys = imagery_keys(trials, "trial", "run-01")
    assert keys == ["run-01_img2", "run-01_img1"]  # numbered in onset order
    design = build_run_design(
        trials,
        frame_times,
        latents,
        TEST_IDS,
        keys[::-1],
        imagery_mode="trial",
        run_label="run-01",
    )
    assert design.shared_names[-3:] == ["img_run-01_img1", "img_run-01_img2", "oneback"]
    E = event_regressors([10.0], [12.0], frame_times)[:, 0]
    np.testing.assert_allclose(design.shared[:, -3], E, atol=1e-12)
    with pytest.raises(UsageError, match="run_label"):
        imagery_keys(trials, "trial", "")


def test_nuisance_kinds_union():
    a = pd.DataFrame({"kind": ["train", "oneback", "null"]})
    b = pd.DataFrame({"kind": ["test", "catch", "imagery"]})
    assert nuisance_kinds_of([a, b]) == ["catch", "oneback"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t, c: (t.assign(kind=t.kind.replace("oneback", "catch")), c), "catch"),
        (
            lambda t, c: (t.assign(stim_id=t.stim_id.where(t.kind != "train", "nope")), c),
            "no latent",
        ),
        (lambda t, c: (t.assign(stim_id=t.stim_id.where(t.kind != "test", "t_zz")), c), "t_zz"),
        (lambda t, c: (t.drop(columns="duration"), c), "duration"),
        (lambda t, c: (t, c.iloc[:-1]), "rows"),
        (lambda t, c: (t, c.assign(csf=np.nan)), "csf"),
        (lambda t, c: (t.assign(duration=-1.0), c), "durations"),
    ],
)
def test_user_errors_name_the_problem(rng, mutate, message):
    trials, latents, frame_times = _run(rng)
    confounds = pd.DataFrame({"csf": rng.standard_normal(frame_times.size)})
    trials, confounds = mutate(trials, confounds)
    with pytest.raises(DataError, match=message):
        build_run_design(trials, frame_times, latents, TEST_IDS, IMG_IDS, ("oneback",), confounds)


def test_bad_frame_times(rng):
    trials, latents, _ = _run(rng)
    with pytest.raises(DataError, match="frame_times"):
        build_run_design(trials, np.array([0.0, 2.0, 1.0]), latents, TEST_IDS, IMG_IDS)
