"""Tests of the simulated BIDS dataset, its truth files and the simulate CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from simfixtures import TINY, sim_noiseless_fixture, sim_tiny_fixture  # noqa: F401

from bids_facedecode.errors import (
    EXIT_CANT_CREATE,
    EXIT_SUCCESS,
    EXIT_USAGE,
    CantCreateError,
    UsageError,
)
from bids_facedecode.simulate.brain import simulate_motion
from bids_facedecode.simulate.cli import main
from bids_facedecode.simulate.dataset import SimulationConfig, simulate_dataset
from bids_facedecode.simulate.events import (
    RunLayout,
    imagery_runs,
    run_trials,
    schedule_test_faces,
)
from bids_facedecode.simulate.faces import GENDER_INDEX, PARAM_NAMES, face_corpus, render_faces

FUNC = Path("sub-01/ses-01/func")
STEM = "sub-01_ses-01_task-faces_run-{:02d}"
TRUTH = Path("sourcedata/simulation")


def _events(root: Path, run: int) -> pd.DataFrame:
    return pd.read_csv(root / FUNC / f"{STEM.format(run)}_events.tsv", sep="\t")


def _stimuli(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / TRUTH / "stimuli.tsv", sep="\t")


# --------------------------------------------------------------------------- events


def test_run_trials_counts_and_onebacks():
    lay = RunLayout()
    rng = np.random.default_rng(0)
    df = run_trials(rng, np.arange(100, 177), np.arange(11), lay, imagined_id=3)
    assert len(df) == lay.n_slots + 1 == 127
    np.testing.assert_allclose(df["onset"].to_numpy()[:126], 6.0 + 3.0 * np.arange(126))
    first = df[df["oneback"] == 0]
    assert (first["trial_type"] == "train_face").sum() == 77
    assert (first["trial_type"] == "test_face").sum() == 11
    assert (df["trial_type"] == "Fix").sum() == 30
    assert df["oneback"].sum() == 8
    for i in np.flatnonzero(df["oneback"].to_numpy()):
        assert df["face_id"][i] == df["face_id"][i - 1] != -1
        assert df["trial_type"][i] == df["trial_type"][i - 1]
    img = df[df["trial_type"] == "Img"]
    assert len(img) == 1 and img["duration"].iloc[0] == 12.0 and img["imagined_id"].iloc[0] == 3
    assert img["onset"].iloc[0] + 12.0 <= lay.n_volumes(True) * lay.tr


def test_schedule_and_imagery_runs():
    sched = schedule_test_faces(np.random.default_rng(1), 16, 20, 11)
    assert sched.shape == (16, 11)
    assert all(len(set(row)) == 11 for row in sched.tolist())
    counts = np.bincount(sched.ravel(), minlength=20)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 176
    np.testing.assert_array_equal(imagery_runs(5, 2), [False, True, False, True, False])
    assert not imagery_runs(4, 0).any()


# --------------------------------------------------------------------------- layout


def test_top_level_files(sim_tiny):
    desc = json.loads((sim_tiny / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.9.0" and desc["DatasetType"] == "raw"
    assert desc["GeneratedBy"][0]["Name"] == "bids_facedecode-simulate"
    assert desc["GeneratedBy"][0]["Version"]
    side = json.loads((sim_tiny / "task-faces_bold.json").read_text())
    assert side["RepetitionTime"] == 2.0 and side["TaskName"] == "faces"
    ev = json.loads((sim_tiny / "task-faces_events.json").read_text())
    assert {"trial_type", "stim_file", "oneback", "imagined_stim_file"} <= set(ev)
    parts = pd.read_csv(sim_tiny / "participants.tsv", sep="\t")
    assert parts["participant_id"].tolist() == ["sub-01"]
    assert (sim_tiny / "README").is_file()
    assert (sim_tiny / "stimuli/placeholders/fixation.png").is_file()
    for run in (1, 2):
        for suffix in ("_bold.nii.gz", "_events.tsv", "_bold.json"):
            assert (sim_tiny / FUNC / f"{STEM.format(run)}{suffix}").is_file()
    raw_masks = [p for p in sim_tiny.rglob("*mask*")
                 if p.relative_to(sim_tiny).parts[0] not in ("derivatives", "sourcedata")]
    assert raw_masks == []  # the raw dataset ships no brain mask
    assert not list(sim_tiny.parent.glob(".tiny.tmp-*"))  # the temporary folder is gone


def test_bold_files(sim_tiny):
    for run, n_vols in ((1, 195), (2, 204)):  # run 2 holds the imagery trial
        img = nib.load(sim_tiny / FUNC / f"{STEM.format(run)}_bold.nii.gz")
        assert img.shape[3] == n_vols
        assert img.get_data_dtype() == np.int16
        slope, inter = img.dataobj.slope, img.dataobj.inter
        assert slope != 1.0 and np.isfinite(slope) and inter == 0.0
        assert img.header.get_zooms() == (8.0, 8.0, 8.0, 2.0)
        assert img.header.get_xyzt_units() == ("mm", "sec")
        side = json.loads((sim_tiny / FUNC / f"{STEM.format(run)}_bold.json").read_text())
        assert side["RepetitionTime"] == 2.0
        assert side["PhilipsRescaleSlope"] == pytest.approx(float(slope), rel=1e-6)


def test_epi_mask_finds_the_brain(sim_tiny):
    from nilearn.masking import compute_epi_mask

    mask = compute_epi_mask(str(sim_tiny / FUNC / f"{STEM.format(1)}_bold.nii.gz"))
    found = np.asarray(mask.dataobj) > 0
    atlas = nib.load(sim_tiny / TRUTH / "atlas-simroi_dseg.nii.gz")
    brain = np.asarray(
        nib.load(
            sim_tiny / "derivatives/fmriprep" / FUNC
            / f"{STEM.format(1)}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
        ).dataobj
    ) > 0
    assert found.shape == brain.shape == atlas.shape
    assert (found & brain).sum() / brain.sum() > 0.9
    assert (found & ~brain).sum() / brain.sum() < 0.1


def test_events_content(sim_tiny):
    train_seen = []
    for run in (1, 2):
        ev = _events(sim_tiny, run)
        assert list(ev.columns) == [
            "onset", "duration", "trial_type", "stim_file", "oneback", "imagined_stim_file"
        ]
        first = ev[ev["oneback"] == 0]
        assert (first["trial_type"] == "train_face").sum() == 77
        assert (first["trial_type"] == "test_face").sum() == 11
        assert ev["oneback"].sum() == 8 and (ev["trial_type"] == "Fix").sum() == 30
        null = ev["trial_type"].isin(["Fix", "Img"])
        assert (ev.loc[null, "stim_file"] == "placeholders/fixation.png").all()
        assert ev.loc[~null, "stim_file"].str.startswith(f"sub01/run{run:02d}/").all()
        img = ev[ev["trial_type"] == "Img"]
        assert len(img) == (1 if run == 2 else 0)
        assert ev.loc[ev["trial_type"] != "Img", "imagined_stim_file"].isna().all()
        train_seen += ev.loc[(ev["trial_type"] == "train_face") & (ev["oneback"] == 0),
                             "stim_file"].tolist()
        for name in ev["stim_file"].tolist() + img["imagined_stim_file"].tolist():
            assert (sim_tiny / "stimuli" / name).is_file()
    assert len(set(train_seen)) == len(train_seen) == 154


def test_stimuli_and_hashes(sim_tiny):
    stim = _stimuli(sim_tiny)
    faces = stim[stim["role"] != "placeholder"]
    for row in faces.itertuples():
        data = (sim_tiny / "stimuli" / row.stim_file).read_bytes()
        assert hashlib.sha1(data).hexdigest() == row.sha1
        assert Path(row.stim_file).name[0] == ("M" if row.gender == 1.0 else "F")
    assert set(faces["gender"]) == {0.0, 1.0}
    test = faces[faces["role"] == "test"]
    by_name = test.groupby(test["stim_file"].map(lambda s: Path(s).name))["sha1"].nunique()
    assert (by_name == 1).all()  # copies of one test image share their hash
    assert test["stim_file"].map(lambda s: Path(s).parent.name).nunique() == 2
    names = {Path(s).name for s in test["stim_file"]}
    assert len(names) <= 20
    assert faces.loc[faces["role"] == "train", "sha1"].is_unique


def test_stimulus_images_match_their_parameters(sim_tiny):
    from PIL import Image

    stim = _stimuli(sim_tiny)
    rows = stim[stim["role"] != "placeholder"].iloc[::25]
    params = rows[list(PARAM_NAMES)].to_numpy(np.float32)
    expected = render_faces(params, 64)
    for k, rel in enumerate(rows["stim_file"]):
        with Image.open(sim_tiny / "stimuli" / rel) as im:
            assert im.format == "JPEG"
            got = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        assert np.abs(got - expected[k]).mean() < 0.02


def test_test_faces_balanced(sim_tiny):
    """20 test faces, 10 male and 10 female, all shown (2 runs x 11 test trials)."""
    test = _stimuli(sim_tiny).query("role == 'test'").drop_duplicates("sha1")
    assert len(test) == 20 and (test["gender"] == 1.0).sum() == 10
    shown = pd.concat([_events(sim_tiny, r) for r in (1, 2)]).query("trial_type == 'test_face'")
    assert shown["stim_file"].map(lambda s: Path(s).name).nunique() == 20


def test_truth_files(sim_tiny):
    info = json.loads((sim_tiny / TRUTH / "simulation.json").read_text())
    assert info["param_names"] == list(PARAM_NAMES)
    assert info["seed"] == TINY.seed and info["noise"]["noise_pct"] > 0
    assert info["hrf"]["model"] == "spm"
    assert {r["roi"] for r in info["regions"]} == {"occipital", "temporal", "frontoparietal"}
    w = nib.load(sim_tiny / TRUTH / "sub-01_desc-weights_voxelweights.nii.gz")
    m = nib.load(sim_tiny / TRUTH / "sub-01_desc-faceselective_mask.nii.gz")
    bold = nib.load(sim_tiny / FUNC / f"{STEM.format(1)}_bold.nii.gz")
    assert w.shape == bold.shape[:3] + (1 + len(PARAM_NAMES),)
    np.testing.assert_allclose(w.affine, bold.affine)
    wd = np.asarray(w.dataobj)
    sel = np.asarray(m.dataobj) > 0
    assert sel.sum() == info["subjects"]["sub-01"]["n_selective_voxels"] > 50
    np.testing.assert_array_equal(np.any(wd[..., 1:] != 0, axis=3), sel)
    assert (wd[sel, 0] > 0).all()
    atlas = np.asarray(nib.load(sim_tiny / TRUTH / "atlas-simroi_dseg.nii.gz").dataobj)
    lut = pd.read_csv(sim_tiny / TRUTH / "atlas-simroi_dseg.tsv", sep="\t")
    assert lut["name"].tolist() == ["occipital", "temporal", "frontoparietal", "control"]
    assert set(np.unique(atlas)) == {0, 1, 2, 3, 4}
    assert np.mean(atlas[sel] > 0) > 0.9  # the ROIs hold the face-selective spheres
    assert set(np.unique(atlas[sel])) >= {1, 2, 3}
    # the control region: no parameter weight and no face response in any voxel
    control = atlas == 4
    assert control.sum() > 50 and not np.any(wd[control] != 0)


def test_control_region_is_far_from_every_jittered_sphere():
    """Over many subjects' draws, no face-selective or face-responsive voxel falls in the
    control region (it keeps 4 SD of the centre jitter beyond every sphere)."""
    from bids_facedecode.simulate.brain import load_brain, make_subject_truth, roi_labels

    brain = load_brain(8.0)
    control = roi_labels(brain.brain_mm()) == 4
    assert control.sum() > 300
    for seed in range(100):
        t = make_subject_truth(brain, len(PARAM_NAMES), np.random.default_rng(seed))
        assert not np.any(t.selective[control]) and not np.any(t.face_amp[control] != 0)


# --------------------------------------------------------------------------- signal


def _truth_design(root: Path, run: int, n_vols: int, imagery_gain: float) -> np.ndarray:
    """Independent regressors from events.tsv + stimuli.tsv with nilearn: (T, 2 + P)."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    stim = _stimuli(root).drop_duplicates("stim_file").set_index("stim_file")
    ev = _events(root, run)
    rows = []
    for r in ev.itertuples():
        if r.trial_type in ("train_face", "test_face"):
            rows.append((r.onset, r.duration, "face", 1.0))
            if r.oneback == 1:  # repetition suppression: no identity-specific response
                continue
            p, gain = np.array(stim.loc[r.stim_file, list(PARAM_NAMES)], dtype=float), 1.0
        elif r.trial_type == "Img":
            rows.append((r.onset, r.duration, "face", imagery_gain))
            p = np.array(stim.loc[r.imagined_stim_file, list(PARAM_NAMES)], dtype=float)
            gain = imagery_gain
        else:
            continue
        p[GENDER_INDEX] = 2.0 * p[GENDER_INDEX] - 1.0
        rows += [(r.onset, r.duration, f"p{j:02d}", gain * p[j]) for j in range(len(p))]
    events = pd.DataFrame(rows, columns=["onset", "duration", "trial_type", "modulation"])
    dm = make_first_level_design_matrix(
        np.arange(n_vols) * 2.0, events, hrf_model="spm", drift_model=None
    )
    cols = ["face"] + [f"p{j:02d}" for j in range(len(PARAM_NAMES))] + ["constant"]
    return dm[cols].to_numpy()


@pytest.mark.parametrize("run", [1, 2])
def test_noiseless_signal_recovers_true_weights(sim_noiseless, run):
    """Regressing a noiseless run on the true regressors recovers the voxel weights."""
    info = json.loads((sim_noiseless / TRUTH / "simulation.json").read_text())
    assert info["noise"]["noiseless"] and info["noise"]["noise_pct"] == 0.0
    img = nib.load(sim_noiseless / FUNC / f"{STEM.format(run)}_bold.nii.gz")
    w = np.asarray(nib.load(sim_noiseless / TRUTH / "sub-01_desc-weights_voxelweights.nii.gz")
                   .dataobj)
    sel = np.asarray(
        nib.load(sim_noiseless / TRUTH / "sub-01_desc-faceselective_mask.nii.gz").dataobj) > 0
    Y = np.asarray(img.dataobj, dtype=np.float64)[sel].T  # (T, V)
    X = _truth_design(sim_noiseless, run, img.shape[3], info["imagery_gain"])
    beta = np.linalg.lstsq(X, Y, rcond=None)[0]
    psc = 100.0 * beta[:-1] / beta[-1]  # BOLD = S0 (1 + psc / 100)
    true = w[sel].T  # (1 + P, V)
    # int16 quantisation leaves tiny errors (largest on gender, collinear with `face`)
    np.testing.assert_allclose(psc, true, atol=0.01)
    assert np.corrcoef(psc.ravel(), true.ravel())[0, 1] > 0.9999
    resid = Y - X @ beta
    assert resid.std() < 0.01 * Y.std()


def test_noisy_signal_still_carries_the_weights(sim_tiny):
    """With noise, weights estimated from two runs correlate with the truth."""
    info = json.loads((sim_tiny / TRUTH / "simulation.json").read_text())
    sel = np.asarray(
        nib.load(sim_tiny / TRUTH / "sub-01_desc-faceselective_mask.nii.gz").dataobj) > 0
    w = np.asarray(nib.load(sim_tiny / TRUTH / "sub-01_desc-weights_voxelweights.nii.gz").dataobj)
    xtx, xty = 0.0, 0.0
    for run in (1, 2):
        img = nib.load(sim_tiny / FUNC / f"{STEM.format(run)}_bold.nii.gz")
        Y = np.asarray(img.dataobj, dtype=np.float64)[sel].T
        Y = 100.0 * (Y / Y.mean(0) - 1.0)
        X = _truth_design(sim_tiny, run, img.shape[3], info["imagery_gain"])
        t = np.arange(len(Y)) / len(Y)
        X = np.column_stack([X, np.cos(np.pi * t), np.cos(2 * np.pi * t), np.cos(3 * np.pi * t)])
        xtx, xty = xtx + X.T @ X, xty + X.T @ Y
    beta = np.linalg.solve(xtx, xty)[1 : 1 + len(PARAM_NAMES)]
    r = np.corrcoef(beta.ravel(), w[sel][:, 1:].T.ravel())[0, 1]
    assert 0.1 < r < 0.99  # chance level: |r| < 0.03


def test_motion_is_in_the_data(sim_tiny):
    """The fMRIPrep motion confounds explain more brain variance than other motion draws."""
    base = sim_tiny / "derivatives/fmriprep" / FUNC
    conf = pd.read_csv(base / f"{STEM.format(1)}_desc-confounds_timeseries.tsv", sep="\t")
    img = nib.load(base / f"{STEM.format(1)}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
    assert img.get_data_dtype() == np.float32
    mask = np.asarray(nib.load(
        base / f"{STEM.format(1)}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz").dataobj) > 0
    Y = np.asarray(img.dataobj, dtype=np.float64)[mask].T
    # remove slow drifts (the confounds' cosine basis) first: random walks would fit them
    N = np.column_stack([np.ones(len(Y)), conf.filter(like="cosine").to_numpy()])
    Q, _ = np.linalg.qr(N)
    Y = Y - Q @ (Q.T @ Y)

    def r2(M):
        M = M - Q @ (Q.T @ M)
        res = Y - M @ np.linalg.lstsq(M, Y, rcond=None)[0]
        return 1.0 - (res**2).sum() / (Y**2).sum()

    motion = conf[["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]].to_numpy()
    rng = np.random.default_rng(0)
    others = [simulate_motion(rng, len(motion)) for _ in range(5)]  # same kind, other draws
    assert r2(motion) > 1.5 * max(r2(m) for m in others)


def test_fmriprep_confounds(sim_tiny):
    base = sim_tiny / "derivatives/fmriprep"
    desc = json.loads((base / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "fMRIPrep"
    for run, n_vols in ((1, 195), (2, 204)):
        conf = pd.read_csv(base / FUNC / f"{STEM.format(run)}_desc-confounds_timeseries.tsv",
                           sep="\t")
        assert len(conf) == n_vols
        need = ["global_signal", "csf", "white_matter", "framewise_displacement",
                "a_comp_cor_00", "cosine00", "trans_x_derivative1", "rot_z_power2",
                "trans_y_derivative1_power2", "dvars", "std_dvars"]
        assert set(need) <= set(conf.columns)
        assert conf["framewise_displacement"].isna().tolist() == [True] + [False] * (n_vols - 1)
        assert conf.drop(columns=[c for c in conf if "derivative" in c or "dvars" in c
                                  or c == "framewise_displacement"]).notna().all().all()
        meta = json.loads(
            (base / FUNC / f"{STEM.format(run)}_desc-confounds_timeseries.json").read_text())
        assert meta["a_comp_cor_00"]["Method"] == "aCompCor"
        preproc = base / FUNC / f"{STEM.format(run)}_space-MNI152NLin2009cAsym_desc-preproc_bold"
        assert nib.load(f"{preproc}.nii.gz").shape[3] == n_vols
        assert json.loads(Path(f"{preproc}.json").read_text())["RepetitionTime"] == 2.0


def test_deterministic(tmp_path):
    cfg = SimulationConfig(subjects=1, sessions=1, runs=1, resolution=12.0, seed=5)
    a = simulate_dataset(tmp_path / "a", cfg)
    b = simulate_dataset(tmp_path / "b", cfg)
    for rel in (f"{FUNC}/{STEM.format(1)}_events.tsv", f"{TRUTH}/stimuli.tsv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    da = np.asarray(nib.load(a / FUNC / f"{STEM.format(1)}_bold.nii.gz").dataobj)
    db = np.asarray(nib.load(b / FUNC / f"{STEM.format(1)}_bold.nii.gz").dataobj)
    np.testing.assert_array_equal(da, db)
    c = simulate_dataset(tmp_path / "c", SimulationConfig(**{**cfg.__dict__, "seed": 6}))
    assert (a / FUNC / f"{STEM.format(1)}_events.tsv").read_bytes() != (
        c / FUNC / f"{STEM.format(1)}_events.tsv").read_bytes()


def test_parallel_equals_serial(tmp_path):
    cfg = SimulationConfig(subjects=1, sessions=1, runs=2, resolution=12.0, seed=2)
    a = simulate_dataset(tmp_path / "a", cfg)
    b = simulate_dataset(tmp_path / "b", SimulationConfig(**{**cfg.__dict__, "nprocs": 2}))
    for run in (1, 2):
        rel = FUNC / f"{STEM.format(run)}_bold.nii.gz"
        np.testing.assert_array_equal(np.asarray(nib.load(a / rel).dataobj),
                                      np.asarray(nib.load(b / rel).dataobj))


def test_config_errors(tmp_path):
    with pytest.raises(UsageError, match="subjects"):
        simulate_dataset(tmp_path / "x", SimulationConfig(subjects=0))
    with pytest.raises(UsageError, match="resolution"):
        simulate_dataset(tmp_path / "x", SimulationConfig(resolution=0.5))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(CantCreateError, match="not empty"):
        simulate_dataset(tmp_path / "full", SimulationConfig())


# --------------------------------------------------------------------------- CLI


def test_cli_exit_codes(tmp_path, capsys):
    assert main(["--help"]) == EXIT_SUCCESS
    assert "faces OUT" in capsys.readouterr().out
    assert main([str(tmp_path / "x"), "--subjects", "0"]) == EXIT_USAGE
    assert main([str(tmp_path / "x"), "--noise", "-1"]) == EXIT_USAGE
    assert main([str(tmp_path / "x"), "--noise", "1", "--noiseless"]) == EXIT_USAGE
    out = tmp_path / "ok"
    args = [str(out), "--subjects", "1", "--sessions", "1", "--runs", "1", "--resolution", "12",
            "--imagery-every", "0", "--noise", "2"]
    assert main(args) == EXIT_SUCCESS
    assert (out / FUNC / f"{STEM.format(1)}_bold.nii.gz").is_file()
    assert nib.load(out / FUNC / f"{STEM.format(1)}_bold.nii.gz").shape[3] == 195
    assert json.loads((out / TRUTH / "simulation.json").read_text())["noise"]["noise_pct"] == 2.0
    assert main(args) == EXIT_CANT_CREATE  # exists and is not empty


def test_cli_faces_corpus(tmp_path):
    out = tmp_path / "corpus"
    assert main(["faces", str(out), "--n", "30", "--seed", "9", "--size", "32"]) == EXIT_SUCCESS
    table = pd.read_csv(out / "params.tsv", sep="\t")
    assert list(table.columns) == ["file", *PARAM_NAMES] and len(table) == 30
    imgs, params = face_corpus(30, seed=9, size=32)
    np.testing.assert_allclose(table[list(PARAM_NAMES)].to_numpy(), params, atol=1e-5)
    from bids_facedecode.images import load_image

    for k in (0, 29):
        name = table["file"][k]
        assert name[0] == ("M" if params[k, GENDER_INDEX] == 1 else "F")
        assert name[1:] == f"{k + 1:06d}.png"
        np.testing.assert_allclose(load_image(out / name), imgs[k], atol=1.0 / 255 + 1e-6)
    assert main(["faces", str(out), "--n", "3"]) == EXIT_CANT_CREATE
    assert main(["faces", str(tmp_path / "c2"), "--n", "0"]) == EXIT_USAGE


def test_bids_validator(sim_tiny, tmp_path):
    exe = shutil.which("bids-validator-deno") or (
        str(Path(__import__("sys").executable).parent / "bids-validator-deno")
    )
    if not Path(exe).exists():
        pytest.skip("bids-validator-deno is not installed")
    proc = subprocess.run([exe, "--json", str(sim_tiny)], capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []


def test_gender_weights_are_drawn_like_the_others():
    """Gender is coded like every generative parameter: its voxel weights are Gaussian draws of
    the same spread as the other parameters' (not a fixed ±1 weight in every voxel)."""
    from bids_facedecode.simulate.brain import load_brain, make_subject_truth
    from bids_facedecode.simulate.faces import GENDER_INDEX

    t = make_subject_truth(load_brain(8.0), len(PARAM_NAMES), np.random.default_rng(0))
    w = t.weights[:, t.selective].astype(np.float64)
    sd = w.std(axis=1)
    pooled = np.sqrt(np.mean(np.delete(sd, GENDER_INDEX) ** 2))
    # the SD of n Gaussian draws has a standard error of about SD / sqrt(2n)
    assert abs(sd[GENDER_INDEX] - pooled) < 4 * pooled / np.sqrt(2 * w.shape[1])
    g = w[GENDER_INDEX]
    assert np.unique(np.round(np.abs(g), 6)).size > 0.9 * g.size  # no constant magnitude
    assert abs(np.mean(g > 0) - 0.5) < 0.1  # both signs, as often
