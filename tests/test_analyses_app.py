"""The issue-5 analyses through the app: decoders, regions, reliability, group tables, re-use.

Runs on the session's small simulated dataset (2 subjects x 4 runs at 8 mm) with its truth.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import app_args

from bids_facedecode.cli import main

SIM = "sourcedata/simulation"


@pytest.fixture(scope="module")
def analyses_run(tmp_path_factory, app_dataset, small_pca):
    """Both levels with every decoder and the simulator's ROI atlas."""
    out = tmp_path_factory.mktemp("analyses") / "derivatives"
    atlas = app_dataset / SIM / "atlas-simroi_dseg.nii.gz"
    assert main(app_args(app_dataset, out, small_pca, "participant", "--decoder", "ols", "wls", "ridge",
                         "--roi-atlas", str(atlas), "--n-permutations", "200")) == 0
    assert main([str(app_dataset), str(out), "group"]) == 0
    return out


def _metrics(out, sub="01"):
    return json.loads((out / f"sub-{sub}" / f"sub-{sub}_task-faces_desc-pca_metrics.json").read_text())


def test_every_decoder_and_region_is_reported(analyses_run):
    doc = _metrics(analyses_run)
    m = doc["metrics"]
    assert doc["decoders"] == ["ols", "wls", "ridge"] and doc["voxel_selection"] == "ftest"
    for key, dec, roi in (("pairwise_latent", "ols", "all"), ("pairwise_latent_wls", "wls", "all"),
                          ("pairwise_latent_ridge", "ridge", "all"),
                          ("pairwise_latent_roi-occipital", "ols", "occipital"),
                          ("gender_accuracy_wls_roi-temporal", "wls", "temporal")):
        assert m[key]["decoder"] == dec and m[key]["roi"] == roi
        assert 0.0 <= m[key]["value"] <= 1.0 and 0 < m[key]["p_value"] <= 1
    # the whole-brain decoders are well above chance on this low-noise simulation
    for dec in ("", "_wls", "_ridge"):
        assert m[f"pairwise_latent{dec}"]["value"] > 0.75
    assert m["pairwise_latent_ridge"]["ridge"] in json.loads(json.dumps(list(
        __import__("bids_facedecode.ridge", fromlist=["RIDGE_GRID"]).RIDGE_GRID)))
    func = analyses_run / "sub-01" / "func"
    tidy = pd.read_csv(func / "sub-01_task-faces_desc-pca_analyses.tsv", sep="\t")
    assert set(tidy["decoder"]) == {"ols", "wls", "ridge"}
    assert set(tidy["roi"]) == {"all", "occipital", "temporal", "frontoparietal", "control"}
    cv = pd.read_csv(func / "sub-01_task-faces_desc-pcaridgecv_analyses.tsv", sep="\t")
    assert cv.groupby("roi")["chosen"].sum().eq(1).all()


def test_regions_follow_the_simulated_face_selectivity(analyses_run, app_dataset):
    """The ROI holding most truly face-selective voxels decodes better than the one holding fewest."""
    sel = np.asarray(nib.load(app_dataset / SIM / "sub-01_desc-faceselective_mask.nii.gz").dataobj) > 0
    atlas = np.asarray(nib.load(app_dataset / SIM / "atlas-simroi_dseg.nii.gz").dataobj)
    names = pd.read_csv(app_dataset / SIM / "atlas-simroi_dseg.tsv", sep="\t").set_index("index")["name"]
    frac = {names[i]: sel[atlas == i].mean() for i in names.index}
    best, worst = max(frac, key=frac.get), min(frac, key=frac.get)
    m = _metrics(analyses_run)["metrics"]
    assert m[f"pairwise_latent_roi-{best}"]["value"] > m[f"pairwise_latent_roi-{worst}"]["value"]


CHANCE_BAND = 0.15  # ~2.3 SD of the pairwise identification of 20 images under the null
MIN_P = 0.01


def _at_chance(metric: dict) -> bool:
    """Identification at chance: within ``CHANCE_BAND`` of 0.5 and permutation p not small."""
    return abs(metric["value"] - metric["chance"]) < CHANCE_BAND and metric["p_value"] > MIN_P


def test_region_without_face_selective_voxels_decodes_at_chance(analyses_run, app_dataset):
    """The simulator's control region has no face-selective voxel in any subject (truth mask):
    its identification sits at chance for both participants; the same check fails on the whole
    brain (both participants) and in sub-01's occipital region, which hold face-selective voxels
    (sub-02's regions decode too weakly on this small dataset to tell them from chance)."""
    atlas = np.asarray(nib.load(app_dataset / SIM / "atlas-simroi_dseg.nii.gz").dataobj)
    names = pd.read_csv(app_dataset / SIM / "atlas-simroi_dseg.tsv", sep="\t").set_index("name")["index"]
    for sub in ("01", "02"):
        sel = np.asarray(nib.load(app_dataset / SIM / f"sub-{sub}_desc-faceselective_mask.nii.gz")
                         .dataobj) > 0
        assert not sel[atlas == names["control"]].any() and sel[atlas == names["occipital"]].any()
        m = _metrics(analyses_run, sub)["metrics"]
        assert m["pairwise_latent_roi-control"]["n_voxels"] >= 17  # D + 1: the plain inverse ran
        assert _at_chance(m["pairwise_latent_roi-control"]), m["pairwise_latent_roi-control"]
        assert not _at_chance(m["pairwise_latent"]), m["pairwise_latent"]
        if sub == "01":
            assert not _at_chance(m["pairwise_latent_roi-occipital"]), m["pairwise_latent_roi-occipital"]


def test_reliability_maps_are_higher_in_face_selective_voxels(analyses_run, app_dataset):
    func = analyses_run / "sub-01" / "func"
    brain = np.asarray(nib.load(func / "sub-01_task-faces_desc-brain_mask.nii.gz").dataobj) > 0
    nc = np.asarray(nib.load(func / "sub-01_task-faces_desc-pcanoiseceiling_statmap.nii.gz").dataobj)
    rel = np.asarray(nib.load(func / "sub-01_task-faces_desc-pcasplithalf_stat-r_statmap.nii.gz").dataobj)
    sel = np.asarray(nib.load(app_dataset / SIM / "sub-01_desc-faceselective_mask.nii.gz").dataobj) > 0
    assert np.all((nc[brain] >= 0) & (nc[brain] <= 1))
    assert np.median(nc[brain & sel]) > np.median(nc[brain & ~sel]) + 0.1
    assert np.median(rel[brain & sel]) > np.median(rel[brain & ~sel]) + 0.1
    dec = pd.read_csv(func / "sub-01_task-faces_desc-pca_decoding.tsv", sep="\t")
    assert {"split_half_pattern_r", "pairwise_latent_wls", "pairwise_latent_ridge"} <= set(dec.columns)


def test_group_tidy_table_and_html_agree(analyses_run):
    from bids_facedecode.report import _fmt

    grp = analyses_run / "group"
    tidy = pd.read_csv(grp / "group_task-faces_statistics.tsv", sep="\t")
    assert set(tidy["level"]) == {"participant", "group"}  # one latent space: nothing paired
    assert {"subject", "space", "metric", "base_metric", "decoder", "roi", "selection", "value",
            "chance", "n", "statistic", "p_value"} <= set(tidy.columns)
    part = tidy[tidy.level == "participant"]
    assert len(part) == part[["subject", "metric"]].drop_duplicates().shape[0]
    stats = pd.read_csv(grp / "group_task-faces_stats.tsv", sep="\t")
    g = tidy[tidy.level == "group"].set_index(["space", "metric"])
    s = stats.set_index(["space", "metric"])
    np.testing.assert_allclose(g.loc[s.index, "value"], s["mean"])
    # the group mean is the mean of the participants' values
    for (space, metric), row in g.iterrows():
        vals = part[(part.space == space) & (part.metric == metric)]["value"]
        assert row["value"] == pytest.approx(vals.mean(), rel=1e-4)  # the TSV keeps 6 digits
    html = (analyses_run / "group.html").read_text()
    for i, r in enumerate(stats.itertuples()):
        cell = (f'data-table="stats-table" data-row="{i}" data-col="mean" data-value="{r.mean}">'
                f"{_fmt(float(r.mean))}</td>")
        assert cell in html


def test_decoder_reuse_reproduces_and_transfers(analyses_run, app_dataset, small_pca, tmp_path):
    """Re-using sub-01's saved decoder on sub-01's data gives the same decoding; on sub-02, whose
    simulated weights are drawn independently, it decodes at chance."""
    npz = analyses_run / "sub-01" / "func" / "sub-01_task-faces_desc-pca_decoder.npz"
    out = tmp_path / "reuse"
    assert main(app_args(app_dataset, out, small_pca, "participant", "--decoder-from", str(npz),
                         "--n-permutations", "200")) == 0
    a = pd.read_csv(analyses_run / "sub-01/func/sub-01_task-faces_desc-pca_decoding.tsv", sep="\t")
    b = pd.read_csv(out / "sub-01/func/sub-01_task-faces_desc-pca_decoding.tsv", sep="\t")
    zc = [c for c in a.columns if c.startswith("decoded_z")]
    np.testing.assert_allclose(b[zc].to_numpy(), a[zc].to_numpy(), rtol=1e-4, atol=1e-5)
    m1, m2 = _metrics(analyses_run), _metrics(out)
    assert m2["decoder_from"] == str(npz)
    assert m2["metrics"]["pairwise_latent"]["value"] == pytest.approx(m1["metrics"]["pairwise_latent"]["value"])
    # the simulator draws each subject's voxel weights independently (simulate.brain), so
    # sub-01's map carries no information about sub-02's responses: the transfer sits at chance
    # (a decoder that used sub-02's own fit, or its truth, would decode it, as its own run does)
    own = _metrics(analyses_run, "02")["metrics"]["pairwise_latent"]
    transfer = _metrics(out, "02")["metrics"]
    assert own["value"] > 0.65 and own["p_value"] < 0.01
    for key in ("pairwise_latent", "nway_latent", "gender_balanced_accuracy"):
        m = transfer[key]
        assert abs(m["value"] - m["chance"]) < 0.25 and m["p_value"] > 0.01, (key, m)


def _without_training_trials(src: Path, dst: Path, subject: str = "01", keep: int = 0) -> Path:
    """A copy of one participant whose events list no training trial (a later session that
    shows only test faces and imagery), or only the first ``keep`` of each run."""
    def others(folder, names):  # the other participants' folders
        return [n for n in names if Path(folder) == src and n.startswith("sub-")
                and n != f"sub-{subject}"]

    shutil.copytree(src, dst, ignore=others)
    for ev in (dst / f"sub-{subject}").rglob("*_events.tsv"):
        table = pd.read_csv(ev, sep="\t", dtype=str, keep_default_na=False)
        train = table.trial_type == "train_face"
        table[~train | (train.cumsum() <= keep)].to_csv(ev, sep="\t", index=False)
    return dst


def test_decoder_reuse_on_data_without_training_trials(analyses_run, app_dataset, small_pca,
                                                       tmp_path):
    """A saved decoder decodes data with test and imagery trials only: the GLM has no latent
    block, the latent F and face t maps are not estimated (NaN, and said so), the gender axis
    is the decoder's own, and decoding stays well above chance."""
    npz = analyses_run / "sub-01" / "func" / "sub-01_task-faces_desc-pca_decoder.npz"
    bids = _without_training_trials(app_dataset, tmp_path / "bids")
    out = tmp_path / "reuse"
    assert main(app_args(bids, out, small_pca, "participant", "--decoder-from", str(npz),
                         "--n-permutations", "200", "--skip-bids-validation")) == 0
    doc = _metrics(out)
    assert doc["n_training_trials"] == 0 and doc["decoder_from"] == str(npz)
    m = doc["metrics"]
    assert m["pairwise_latent"]["value"] > 0.6 and "gender_accuracy" in m
    func = out / "sub-01" / "func"
    brain = np.asarray(nib.load(func / "sub-01_task-faces_desc-brain_mask.nii.gz").dataobj) > 0
    for name, why in (("desc-pca_stat-F", "no latent block"),
                      ("desc-facevsfixation_stat-t", "no training trials")):
        img = nib.load(func / f"sub-01_task-faces_{name}_statmap.nii.gz")
        assert np.isnan(np.asarray(img.dataobj)[brain]).all()
        side = json.loads((func / f"sub-01_task-faces_{name}_statmap.json").read_text())
        assert why in side["Description"]
    dec = pd.read_csv(func / "sub-01_task-faces_desc-pca_decoding.tsv", sep="\t")
    assert np.isfinite(dec[[c for c in dec.columns if c.startswith("decoded_z")]].to_numpy()).all()
    html = (out / "sub-01.html").read_text()
    assert html.count("Not estimated (NaN)") == 2  # the captions of both maps
    assert "could not be drawn" not in html


def test_decoder_reuse_with_too_few_training_trials_for_a_latent_block(analyses_run, app_dataset,
                                                                       small_pca, tmp_path, caplog):
    """5 training trials a run (~20 in all) cannot support 16 latent regressors; with a saved
    decoder for every space they are modelled by the face regressor alone: the face t map is
    estimated, the latent F map is not, and decoding stays well above chance."""
    import logging

    npz = analyses_run / "sub-01" / "func" / "sub-01_task-faces_desc-pca_decoder.npz"
    bids = _without_training_trials(app_dataset, tmp_path / "bids", keep=5)
    out = tmp_path / "reuse"
    with caplog.at_level(logging.INFO, logger="bids_facedecode"):
        assert main(app_args(bids, out, small_pca, "participant", "--decoder-from", str(npz),
                             "--n-permutations", "200", "--skip-bids-validation")) == 0
    doc = _metrics(out)
    n = doc["n_training_trials"]
    assert 15 <= n <= 20 and doc["metrics"]["pairwise_latent"]["value"] > 0.6
    assert f"has {n} training trials; a map with 16 latent dimensions" in caplog.text
    assert "no latent block" in caplog.text
    func = out / "sub-01" / "func"
    brain = np.asarray(nib.load(func / "sub-01_task-faces_desc-brain_mask.nii.gz").dataobj) > 0
    t = np.asarray(nib.load(func / "sub-01_task-faces_desc-facevsfixation_stat-t_statmap.nii.gz")
                   .dataobj)[brain]
    f = np.asarray(nib.load(func / "sub-01_task-faces_desc-pca_stat-F_statmap.nii.gz").dataobj)[brain]
    assert np.isfinite(t).all() and np.abs(t).max() > 3 and np.isnan(f).all()
    # without a decoder for every space, the same data are refused before any BOLD is read
    code = main(app_args(bids, tmp_path / "fit", small_pca, "participant", "--skip-bids-validation"))
    assert code == 65


def test_data_without_training_trials_need_a_decoder_for_every_space(app_dataset, small_pca,
                                                                      tmp_path, capsys):
    bids = _without_training_trials(app_dataset, tmp_path / "bids")
    out = tmp_path / "out"
    code = main(app_args(bids, out, small_pca, "participant", "--skip-bids-validation"))
    err = capsys.readouterr().err
    assert code == 65 and "no 'train_face' trials" in err and "--decoder-from" in err
    assert not out.exists() or not any(out.rglob("*.nii.gz"))
    # a decoder for one of two decoded spaces is not enough: stopped before any BOLD is read
    npz = tmp_path / "sub-01_task-faces_desc-pca_decoder.npz"
    np.savez(npz, W=np.zeros((17, 1)), selected=np.zeros(1, np.int64), z_mean=np.zeros(16),
             mask=np.ones((2, 2, 2), bool), affine=np.eye(4), space=np.array("pca"))
    code = main(app_args(bids, out, small_pca, "participant", "--skip-bids-validation",
                         "--decoder-from", str(npz)) + ["--latent-space", "pca", "pcb",
                                                          "--latent-model", f"pcb={small_pca}"])
    err = capsys.readouterr().err
    assert code == 65 and "map of pcb cannot be fitted" in err
    assert not out.exists() or not any(out.rglob("*.nii.gz"))


@pytest.mark.slow
def test_noise_ceiling_selection_picks_the_top_of_its_map(app_dataset, small_pca, tmp_path):
    out = tmp_path / "nc"
    assert main(app_args(app_dataset, out, small_pca, "participant", "--participant-label", "01",
                         "--voxel-selection", "noiseceiling", "--n-permutations", "100")) == 0
    func = out / "sub-01" / "func"
    brain = np.asarray(nib.load(func / "sub-01_task-faces_desc-brain_mask.nii.gz").dataobj) > 0
    nc = np.asarray(nib.load(func / "sub-01_task-faces_desc-pcanoiseceiling_statmap.nii.gz").dataobj)[brain]
    sel = np.asarray(nib.load(func / "sub-01_task-faces_desc-pcaselected_mask.nii.gz").dataobj)[brain] > 0
    assert sel.sum() == 300 and nc[sel].min() >= nc[~sel].max()
    doc = _metrics(out)
    assert doc["voxel_selection"] == "noiseceiling" and doc["metrics"]["pairwise_latent"]["value"] > 0.7


@pytest.mark.slow
def test_imagery_labels_table_replaces_the_events_column(app_dataset, small_pca, tmp_path, analyses_run):
    """Without the events column imagery is not evaluated; a labels table brings it back, equal."""
    bids = tmp_path / "bids"
    shutil.copytree(app_dataset, bids)
    rows = []
    for ev in sorted(bids.glob("sub-01/**/*_events.tsv")):
        t = pd.read_csv(ev, sep="\t", dtype=str, keep_default_na=False)
        img = t[t["trial_type"] == "Img"]
        rows += [{"events_file": ev.name, "onset": o, "imagined_stim_file": f}
                 for o, f in zip(img["onset"], img["imagined_stim_file"], strict=True)]
        t.drop(columns="imagined_stim_file").to_csv(ev, sep="\t", index=False)
    assert rows
    labels = tmp_path / "imagery.tsv"
    pd.DataFrame(rows).to_csv(labels, sep="\t", index=False)
    base = ["--participant-label", "01", "--n-permutations", "200"]
    assert main(app_args(bids, tmp_path / "none", small_pca, "participant", *base)) == 0
    assert "imagery_pairwise" not in _metrics(tmp_path / "none")["metrics"]
    out = tmp_path / "labelled"
    assert main(app_args(bids, out, small_pca, "participant", *base, "--imagery-labels", str(labels))) == 0
    got = _metrics(out)["metrics"]["imagery_pairwise"]
    want = _metrics(analyses_run)["metrics"]["imagery_pairwise"]
    assert got["value"] == pytest.approx(want["value"]) and got["n"] == want["n"]


def test_saved_decoder_carries_its_gender_axis(analyses_run, tmp_path):
    from bids_facedecode.bidsio.outputs import load_decoder
    from bids_facedecode.errors import DataError

    npz = analyses_run / "sub-01" / "func" / "sub-01_task-faces_desc-pca_decoder.npz"
    saved = load_decoder(npz)
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    assert saved.gender_axis is not None and saved.gender_axis.shape == (saved.latent_dim,)
    np.testing.assert_array_equal(saved.gender_axis, arrays["gender_axis"])
    np.testing.assert_array_equal(saved.gender_midpoint, arrays["gender_midpoint"])
    no_labels = tmp_path / "nolabels.npz"
    np.savez(no_labels, **{**arrays, "gender_axis": np.zeros(0), "gender_midpoint": np.zeros(0)})
    assert load_decoder(no_labels).gender_axis is None
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**arrays, "gender_axis": np.ones(3)})
    with pytest.raises(DataError, match=r"bad.npz: gender axis of 3 dimensions for a decoder of D=16"):
        load_decoder(bad)


def test_paper_selection_keeps_the_voxels_passing_both_thresholds(app_dataset, small_pca, tmp_path):
    """--voxel-selection paper through the app: the mask is exactly the voxels whose written face t
    and latent F maps pass both cuts (computed here from scipy and the sidecars' degrees of
    freedom), and outputs, sidecars and methods text say what ran."""
    from scipy import stats

    out = tmp_path / "paper"
    assert main(app_args(app_dataset, out, small_pca, "participant", "--participant-label", "01",
                         "--voxel-selection", "paper", "--selection-p-face", "0.01",
                         "--selection-p-latent", "0.05", "--n-permutations", "50")) == 0
    func = out / "sub-01" / "func"
    brain = np.asarray(nib.load(func / "sub-01_task-faces_desc-brain_mask.nii.gz").dataobj) > 0
    tpath = func / "sub-01_task-faces_desc-facevsfixation_stat-t_statmap.nii.gz"
    fpath = func / "sub-01_task-faces_desc-pca_stat-F_statmap.nii.gz"
    t = np.asarray(nib.load(tpath).dataobj, dtype=np.float64)[brain]
    f = np.asarray(nib.load(fpath).dataobj, dtype=np.float64)[brain]
    dof = json.loads(tpath.with_name(tpath.name.replace(".nii.gz", ".json")).read_text())
    q, dof_f = json.loads(fpath.with_name(fpath.name.replace(".nii.gz", ".json")).read_text())[
        "DegreesOfFreedom"]
    assert dof["NoiseModel"] == "ar1" and dof_f == dof["DegreesOfFreedom"]
    by_hand = (t >= stats.t.isf(0.01, dof_f)) & (f >= stats.f.isf(0.05, q, dof_f))
    sel = np.asarray(nib.load(func / "sub-01_task-faces_desc-pcaselected_mask.nii.gz").dataobj)[brain] > 0
    assert 0 < by_hand.sum() < brain.sum() and (sel == by_hand).all()
    doc = _metrics(out)
    assert doc["voxel_selection"] == "paper" and doc["noise_model"] == "ar1"
    assert doc["selection_detail"]["n_selected"] == doc["n_voxels"] == int(by_hand.sum())
    assert doc["selection_detail"]["face_alpha"] == 0.01 and doc["selection_detail"]["correction"] == "uncorrected"
    html = (out / "sub-01.html").read_text()
    assert "significant both for face vs fixation" in html and "AR(1)" in html
    assert "--derivatives" in html  # raw BOLD: no confounds, and the way to add them
