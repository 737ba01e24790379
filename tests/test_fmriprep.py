"""fMRIPrep derivatives as input: runs, masks, confounds, and agreement with the raw path."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import write_truth_table

from bids_facedecode.bidsio.confounds import censor_regressors, load_run_confounds, parse_strategy
from bids_facedecode.bidsio.layout import find_runs, index_dataset
from bids_facedecode.bidsio.masks import intersect_masks
from bids_facedecode.cli import main
from bids_facedecode.config import Settings
from bids_facedecode.design import build_run_design
from bids_facedecode.errors import UsageError
from bids_facedecode.workflow.inputs import collect_inputs

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture(scope="module")
def layout(sim_tiny):
    return index_dataset(sim_tiny, None, sim_tiny / "derivatives" / "fmriprep")


@pytest.fixture(scope="module")
def both_inputs(sim_tiny, layout):
    """The participant's inputs read the raw way and the fMRIPrep way (default confounds)."""
    raw = Settings(bids_dir=sim_tiny, output_dir=sim_tiny.parent / "o", analysis_level="participant")
    prep = dataclasses.replace(raw, derivatives=sim_tiny / "derivatives" / "fmriprep", space=SPACE,
                               confounds=parse_strategy("simple"))
    return collect_inputs(raw, layout, "01", {}), collect_inputs(prep, layout, "01", {})


def test_runs_found_through_pybids(sim_tiny, layout):
    runs = find_runs(layout, "01", "faces", space=SPACE)
    assert [r.run for r in runs] == ["01", "02"] or [int(r.run) for r in runs] == [1, 2]
    for r in runs:
        assert r.bold.name.endswith(f"space-{SPACE}_desc-preproc_bold.nii.gz")
        assert r.mask.name.endswith(f"space-{SPACE}_desc-brain_mask.nii.gz")
        assert r.confounds.name.endswith("desc-confounds_timeseries.tsv")
        assert r.events.parent == sim_tiny / "sub-01" / "ses-01" / "func"  # events from the raw dataset
        assert r.t_r == 2.0 and r.space == SPACE


def test_derivatives_outside_the_raw_dataset(sim_tiny, tmp_path):
    import shutil

    deriv = tmp_path / "fmriprep"
    shutil.copytree(sim_tiny / "derivatives" / "fmriprep", deriv)
    layout = index_dataset(sim_tiny, None, deriv)
    runs = find_runs(layout, "01", "faces", space=SPACE)
    assert len(runs) == 2 and all(deriv in r.bold.parents and deriv in r.mask.parents for r in runs)
    assert all(r.events.parent == sim_tiny / "sub-01" / "ses-01" / "func" for r in runs)


def test_two_resolutions_of_one_run_are_refused(sim_tiny, tmp_path):
    import shutil

    deriv = tmp_path / "fmriprep"
    shutil.copytree(sim_tiny / "derivatives" / "fmriprep", deriv)
    func = deriv / "sub-01" / "ses-01" / "func"
    for path in list(func.glob(f"*run-01_space-{SPACE}_desc-*")):
        shutil.copy(path, func / path.name.replace(f"space-{SPACE}_", f"space-{SPACE}_res-2_"))
    layout = index_dataset(sim_tiny, None, deriv)
    with pytest.raises(UsageError, match="second image of the run"):
        find_runs(layout, "01", "faces", space=SPACE)
    runs = find_runs(layout, "01", "faces", filters={"res": "2"}, space=SPACE)
    assert len(runs) == 1 and "res-2" in runs[0].bold.name and "res-2" in runs[0].mask.name


def test_same_trials_as_raw_path(both_inputs):
    raw, prep = both_inputs
    assert [r.n_scans for r in raw.runs] == [r.n_scans for r in prep.runs]
    assert raw.train_trial_ids == prep.train_trial_ids and raw.test_ids == prep.test_ids
    assert raw.imagery_ids == prep.imagery_ids and raw.nuisance_kinds == prep.nuisance_kinds
    for a, b in zip(raw.trials, prep.trials, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert raw.confounds is None and len(prep.confounds) == len(prep.runs)


def test_same_design_up_to_confounds(both_inputs):
    raw, prep = both_inputs
    rng = np.random.default_rng(0)
    z = {s: rng.normal(size=4) for s in raw.train_ids}
    for k, run in enumerate(raw.runs):
        ft = np.arange(run.n_scans) * run.t_r
        a = build_run_design(raw.trials[k], ft, z, raw.test_ids, raw.imagery_ids, raw.nuisance_kinds)
        b = build_run_design(prep.trials[k], ft, z, prep.test_ids, prep.imagery_ids, prep.nuisance_kinds,
                             prep.confounds[k])
        assert a.shared_names == b.shared_names
        np.testing.assert_array_equal(a.shared, b.shared)
        conf = prep.confounds[k].to_numpy()
        # the derivative design's nuisance block is the raw one plus exactly the confounds
        assert b.nuisance.shape[1] == a.nuisance.shape[1] + conf.shape[1]
        for block in (a.nuisance, conf):
            resid = block - b.nuisance @ np.linalg.lstsq(b.nuisance, block, rcond=None)[0]
            assert np.abs(resid).max() < 1e-8 * max(1.0, np.abs(block).max())


def test_default_confounds_match_nilearn(both_inputs):
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    _, prep = both_inputs
    run = prep.runs[0]
    ref, sample_mask = load_confounds_strategy(str(run.bold), denoise_strategy="simple")
    assert sample_mask is None
    pd.testing.assert_frame_equal(prep.confounds[0], ref.reset_index(drop=True))
    assert not prep.confounds[0].isna().any().any()  # nilearn filled the first rows
    raw = pd.read_csv(run.confounds, sep="\t", na_values="n/a")
    assert raw["trans_x_derivative1"].isna().iloc[0]  # ... which are NaN in the fMRIPrep table
    assert {"trans_x", "rot_z_derivative1_power2", "csf", "white_matter"} <= set(prep.confounds[0].columns)


def test_scrubbing_becomes_spike_regressors(both_inputs):
    from nilearn.interfaces.fmriprep import load_confounds

    _, prep = both_inputs
    run = prep.runs[1]
    frame = load_run_confounds(run.bold, run.confounds, ("motion", "scrub"), run.n_scans)
    _, sample_mask = load_confounds(str(run.bold), strategy=("motion", "scrub"))
    spikes = frame[[c for c in frame.columns if c.startswith("censor_")]]
    kept = np.ones(run.n_scans, bool)
    if sample_mask is not None:
        kept[:] = False
        kept[sample_mask] = True
    assert spikes.shape[1] == int((~kept).sum())
    np.testing.assert_array_equal(spikes.sum(axis=1).to_numpy() > 0, ~kept)


def test_censor_regressors_closed_form():
    spikes = censor_regressors(np.array([0, 1, 3, 4]), 6)
    assert list(spikes.columns) == ["censor_0002", "censor_0005"]
    np.testing.assert_array_equal(spikes.to_numpy(), np.eye(6)[:, [2, 5]])
    assert censor_regressors(None, 4).shape == (4, 0)


@pytest.mark.parametrize(("text", "expected"), [
    ("simple", ("simple",)), ("none", ()), ("motion+wm_csf", ("motion", "wm_csf")),
    (" Motion, compcor ", ("motion", "compcor")), ("scrubbing", ("scrubbing",)),
])
def test_parse_strategy(text, expected):
    assert parse_strategy(text) == expected


@pytest.mark.parametrize("text", ["ica_aroma", "motion+bogus", "simple+motion"])
def test_parse_strategy_rejects(text):
    with pytest.raises(UsageError, match="--confounds"):
        parse_strategy(text)


def test_mask_is_intersection_across_runs(sim_tiny, layout, tmp_path):
    from nilearn.masking import intersect_masks as nilearn_intersect

    runs = find_runs(layout, "01", "faces", space=SPACE)
    # shrink the second run's mask so the intersection differs from either mask
    img = nib.load(runs[1].mask)
    data = np.asarray(img.dataobj).copy()
    data[: data.shape[0] // 2] = 0
    shrunk = tmp_path / runs[1].mask.name
    nib.save(nib.Nifti1Image(data, img.affine, img.header), shrunk)
    runs[1] = dataclasses.replace(runs[1], mask=shrunk)
    ours = np.asarray(intersect_masks(runs).dataobj).astype(bool)
    ref = nilearn_intersect([str(r.mask) for r in runs], threshold=1, connected=False)
    np.testing.assert_array_equal(ours, np.asarray(ref.dataobj).astype(bool))
    assert 0 < ours.sum() < (np.asarray(nib.load(runs[0].mask).dataobj) > 0).sum()


@pytest.fixture(scope="module")
def two_runs(sim_tiny, tmp_path_factory):
    """The app run on raw BOLD and on the fMRIPrep derivatives (confounds none and default)."""
    from bids_facedecode.workflow import streaming

    base = tmp_path_factory.mktemp("fmriprep_app")
    table = write_truth_table(sim_tiny, base / "truth.tsv")
    outs = {}
    fitted: list[np.ndarray] = []  # [X | nuisance] of every run the GLM accumulated ("prep")
    accumulate = streaming.glm.accumulate_runs

    def recording(ne, runs, **kw):
        fitted.extend(np.hstack([np.asarray(r[0]), np.asarray(r[2])]) for r in runs)
        return accumulate(ne, runs, **kw)

    for name, extra in (("raw", []),
                        ("prep_none", ["--derivatives", str(sim_tiny / "derivatives" / "fmriprep"),
                                       "--confounds", "none"]),
                        ("prep", ["--derivatives", str(sim_tiny / "derivatives" / "fmriprep")])):
        out = base / name
        with pytest.MonkeyPatch.context() as mp:
            if name == "prep":
                mp.setattr(streaming.glm, "accumulate_runs", recording)
            code = main([str(sim_tiny), str(out), "participant", "--latent-space", "truth", "--latents",
                         f"truth={table}", "--n-voxels", "100", "-w", str(base / f"work_{name}"), *extra])
        assert code == 0
        outs[name] = out
    outs["fitted"] = fitted
    return outs


def test_the_reported_design_is_the_fitted_one_confounds_included(two_runs):
    """The report's design table of a --derivatives run holds the first run's design as the GLM
    accumulated it: the same columns (the fMRIPrep confounds among them) and the same values."""
    func = two_runs["prep"] / "sub-01" / "func"
    (path,) = func.glob("*run-01_design.tsv")
    shown = pd.read_csv(path, sep="\t")
    assert {"trans_x", "rot_z"} <= set(shown.columns)  # the default strategy's motion parameters
    same = [f for f in two_runs["fitted"] if f.shape == shown.shape
            and np.allclose(f, shown.to_numpy(float), rtol=1e-5, atol=1e-6)]
    assert len(same) == 1, f"no accumulated run design matches {path.name} ({shown.shape})"


def test_derivatives_end_to_end_names_carry_space(two_runs):
    func = two_runs["prep"] / "sub-01" / "func"
    stem = f"sub-01_task-faces_space-{SPACE}"
    for name in (f"{stem}_desc-truth_stat-F_statmap.nii.gz", f"{stem}_desc-brain_mask.nii.gz",
                 f"{stem}_desc-truthselected_mask.nii.gz", f"{stem}_desc-facevsfixation_stat-t_statmap.nii.gz"):
        assert (func / name).is_file(), name
    assert not list((two_runs["raw"] / "sub-01" / "func").glob("*space-*"))  # raw input: native space
    metrics = json.loads((two_runs["prep"] / "sub-01" / "sub-01_task-faces_desc-truth_metrics.json").read_text())
    raw_metrics = json.loads((two_runs["raw"] / "sub-01" / "sub-01_task-faces_desc-truth_metrics.json").read_text())
    for key in ("n_runs", "n_volumes", "n_training_trials", "n_test_images"):
        assert metrics[key] == raw_metrics[key]
    config = json.loads((two_runs["prep"] / "logs" / "sub-01_config.json").read_text())
    assert config["space"] == SPACE and config["confounds"] == ["simple"]


def test_derivatives_without_confounds_equal_raw_on_common_voxels(two_runs):
    """Same data (the simulated preproc BOLD is the raw BOLD in float32), same design: the F maps
    agree wherever both masks hold the voxel; default confounds change them."""
    def maps(out, space):
        func = out / "sub-01" / "func"
        ent = f"_space-{SPACE}" if space else ""
        f = nib.load(func / f"sub-01_task-faces{ent}_desc-truth_stat-F_statmap.nii.gz").get_fdata()
        m = nib.load(func / f"sub-01_task-faces{ent}_desc-brain_mask.nii.gz").get_fdata() > 0
        return f, m

    f_raw, m_raw = maps(two_runs["raw"], False)
    f_none, m_none = maps(two_runs["prep_none"], True)
    f_conf, _ = maps(two_runs["prep"], True)
    common = m_raw & m_none
    assert common.sum() > 100
    # the AR(1) coefficient of a run is pooled over a voxel sample of the analysis mask, and the
    # two masks differ: the maps agree to the effect of that (< 1 %), not to rounding
    np.testing.assert_allclose(f_none[common], f_raw[common], rtol=2e-2, atol=1e-6)
    assert not np.allclose(f_conf[common], f_none[common], rtol=1e-3)
