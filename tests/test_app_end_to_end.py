"""The whole app, in-process: participant and group levels on a small simulated dataset."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import APP, APP_D, app_args, truth_params

from bids_facedecode.cli import main

pytestmark = pytest.mark.slow
SUBJECTS = [f"{i:02d}" for i in range(1, APP.subjects + 1)]


def test_dataset_description(app_run):
    desc = json.loads((app_run / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "bids_facedecode"
    assert desc["GeneratedBy"][0]["Version"]


@pytest.mark.parametrize("sub", SUBJECTS)
def test_participant_files(app_run, sub):
    func = app_run / f"sub-{sub}" / "func"
    stem = f"sub-{sub}_task-faces"
    for name in (f"{stem}_desc-pca_stat-F_statmap.nii.gz", f"{stem}_desc-pca_stat-F_statmap.json",
                 f"{stem}_desc-facevsfixation_stat-t_statmap.nii.gz", f"{stem}_desc-brain_mask.nii.gz",
                 f"{stem}_desc-pcaselected_mask.nii.gz", f"{stem}_desc-pca_decoding.tsv",
                 f"{stem}_desc-pca_decoder.npz"):
        assert (func / name).is_file(), name
    assert (app_run / f"sub-{sub}" / f"{stem}_desc-pca_metrics.json").is_file()
    assert (app_run / f"sub-{sub}" / "figures" / f"{stem}_desc-pca_reconstructions.png").is_file()
    assert (app_run / f"sub-{sub}.html").is_file()
    assert (app_run / "logs" / f"sub-{sub}_config.json").is_file()
    # no temporary files or staging folders left behind (.bidsignore is an output)
    assert not [p for p in app_run.rglob(".*") if p.is_file() and p.name != ".bidsignore"]
    assert not list((app_run / ".bids_facedecode").glob("*.stage*"))


@pytest.mark.parametrize("sub", SUBJECTS)
def test_maps_and_tables_agree(app_run, sub):
    func = app_run / f"sub-{sub}" / "func"
    stem = f"sub-{sub}_task-faces"
    sel = nib.load(func / f"{stem}_desc-pcaselected_mask.nii.gz").get_fdata()
    brain = nib.load(func / f"{stem}_desc-brain_mask.nii.gz").get_fdata()
    assert sel.sum() == 300
    assert np.all(brain[sel > 0] == 1)
    fmap = nib.load(func / f"{stem}_desc-pca_stat-F_statmap.nii.gz").get_fdata()
    # the selected voxels are the 300 largest F values inside the brain
    assert fmap[sel > 0].min() >= np.sort(fmap[brain > 0])[-300] - 1e-6
    table = pd.read_csv(func / f"{stem}_desc-pca_decoding.tsv", sep="\t")
    assert len(table) == APP.n_test
    assert {"stim_file", "gender", "pairwise_latent", "pairwise_image", "ssim"} <= set(table.columns)
    assert [c for c in table.columns if c.startswith("decoded_z")] == [f"decoded_z{k}" for k in
                                                                        range(1, APP_D + 1)]
    doc = json.loads((app_run / f"sub-{sub}" / f"{stem}_desc-pca_metrics.json").read_text())
    assert doc["latent_dim"] == APP_D and doc["n_voxels"] == 300
    m = doc["metrics"]
    assert m["pairwise_latent"]["value"] == pytest.approx(table["pairwise_latent"].mean())
    assert m["pairwise_latent"]["chance"] == 0.5
    for key in ("pairwise_latent", "pairwise_image", "gender_accuracy", "imagery_pairwise",
                "nway_latent", "gender_balanced_accuracy", "pairwise_latent_uncentred"):
        assert 0.0 <= m[key]["value"] <= 1.0 and 0.0 < m[key]["p_value"] <= 1.0
    # the records are the decoding table's per-image columns, with their chance levels
    n = len(table)
    for key, col in (("nway_latent", "nway_latent"), ("mean_rank_latent", "rank_latent"),
                     ("pairwise_latent_uncentred", "pairwise_latent_uncentred"),
                     ("pairwise_image", "pairwise_image")):
        assert m[key]["value"] == pytest.approx(table[col].mean(), abs=1e-5)
    assert m["nway_latent"]["chance"] == pytest.approx(1 / n)
    assert m["mean_rank_latent"]["chance"] == pytest.approx((n + 1) / 2)
    assert m["mean_rank_latent"]["alternative"] == "less"
    # per image, rank = 1 + (n - 1)(1 - pairwise)
    np.testing.assert_allclose(table["rank_latent"], 1 + (n - 1) * (1 - table["pairwise_latent"]),
                               atol=1e-4)  # the TSV keeps 6 digits
    assert m["gender_balanced_accuracy"]["chance"] == 0.5
    assert 0.0 <= m["gender_balanced_accuracy"]["ceiling"] <= 1.0
    assert m["gender_accuracy"]["value"] == pytest.approx(table["gender_correct"].mean(), abs=1e-5)
    for key in ("pixel_correlation", "ssim"):  # the mean-face baseline beside the value
        assert m[key]["baseline"] == pytest.approx(table[f"mean_face_{key}"].mean(), abs=1e-5)
    assert 0.0 < m["imagery_pairwise"]["chance"] < 1.0
    decoder = np.load(func / f"{stem}_desc-pca_decoder.npz")
    assert decoder["W"].shape == (APP_D + 1, 300)


def test_decoding_above_chance(app_run):
    """Even 4 runs of low-noise simulated data decode the test faces above chance in latent space."""
    values = [json.loads((app_run / f"sub-{s}" / f"sub-{s}_task-faces_desc-pca_metrics.json")
                         .read_text())["metrics"]["pairwise_latent"]["value"] for s in SUBJECTS]
    assert np.mean(values) > 0.6


def test_group_outputs(app_run):
    table = pd.read_csv(app_run / "group" / "group_task-faces_metrics.tsv", sep="\t")
    assert sorted(table["subject"].astype(str).str.zfill(2).unique()) == SUBJECTS
    stats = pd.read_csv(app_run / "group" / "group_task-faces_stats.tsv", sep="\t")
    row = stats[(stats.space == "pca") & (stats.metric == "pairwise_latent")].iloc[0]
    vals = table[(table.space == "pca") & (table.metric == "pairwise_latent")]["value"]
    assert row["mean"] == pytest.approx(vals.mean(), abs=1e-6)
    html = (app_run / "group.html").read_text()
    assert "pairwise_latent" in html and "sub-01.html" in html


def test_noiseless_truth_latents_recovered(sim_noiseless, tmp_path):
    """With the simulator's generative parameters as precomputed latents and noiseless data,
    decoding recovers the true latents of the test faces (correlation > 0.99)."""
    stim = truth_params(sim_noiseless)
    stim["gender"] = stim["gender"] * 2 - 1  # the brain codes gender as +1 / -1
    params = [c for c in stim.columns if c != "sha1"]
    table = tmp_path / "truth.tsv"
    stim[["sha1", *params]].to_csv(table, sep="\t", index=False)
    out = tmp_path / "out"
    code = main([str(sim_noiseless), str(out), "participant", "--latent-space", "truth",
                 "--latents", f"truth={table}", "--n-voxels", "100", "-w", str(tmp_path / "w")])
    assert code == 0
    dec = pd.read_csv(out / "sub-01" / "func" / "sub-01_task-faces_desc-truth_decoding.tsv", sep="\t")
    truth = stim.set_index("sha1").loc[dec["stim_id"], params].to_numpy(float)
    decoded = dec[[f"decoded_z{k}" for k in range(1, len(params) + 1)]].to_numpy(float)
    r = np.corrcoef(decoded.ravel(), truth.ravel())[0, 1]
    assert r > 0.99


def test_rerun_with_cache_is_identical(app_run, app_dataset, small_pca, tmp_path):
    """A second run reads the masked-data cache and gives the same numbers."""
    out = tmp_path / "again"
    args = app_args(app_dataset, out, small_pca, "participant", "--participant-label", "01")
    args[args.index("-w") + 1] = str(app_run.parent / "work")  # the cache of the first run
    assert main(args) == 0
    a = (app_run / "sub-01" / "func" / "sub-01_task-faces_desc-pca_decoding.tsv").read_text()
    b = (out / "sub-01" / "func" / "sub-01_task-faces_desc-pca_decoding.tsv").read_text()
    assert a == b
