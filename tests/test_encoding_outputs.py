"""The app's encoding outputs on a simulated dataset whose brain is coded in the small PCA's latents.

Three spaces in one run (the PCA that generated the data, the simulator's generative
parameters, random latents): the maps and tables exist with their sidecars, the generating
space predicts best where the signal is, the atlas' control region sits at chance, and the
same chance check fails for a forward map fitted on the test images themselves.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from bids_facedecode.bidsio.encoding_outputs import encoding_paths, table_paths
from bids_facedecode.simulate import SimulationConfig, simulate_dataset
from bids_facedecode.simulate.brain_code import write_params_table

SIM = "sourcedata/simulation"
SPACES = ("pca", "params", "rand")
N_RUNS = 5


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, small_pca):
    """Both levels on a PCA-coded dataset of 2 participants, 3 spaces, the simulator's atlas."""
    from bids_facedecode.cli import main
    from bids_facedecode.workflow import streaming

    tmp = tmp_path_factory.mktemp("encout")
    cfg = SimulationConfig(subjects=2, sessions=1, runs=N_RUNS, resolution=8.0, noise=0.3, seed=5,
                           brain_code=str(small_pca), imagery_every=0)
    bids = simulate_dataset(tmp / "bids", cfg)
    params = write_params_table(bids, tmp / "params.tsv")
    table = pd.read_csv(params, sep="\t")
    rng = np.random.default_rng(0)
    rand = pd.DataFrame({"sha1": table["sha1"],
                         **{f"z{k + 1}": rng.normal(size=len(table)) for k in range(8)}})
    rand.to_csv(tmp / "rand.tsv", sep="\t", index=False)
    out = tmp / "out"
    reads = []
    real = streaming.load_masked_run_cached
    with pytest.MonkeyPatch.context() as mp:  # count the BOLD reads of the participant level
        mp.setattr(streaming, "load_masked_run_cached",
                   lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
        assert main([str(bids), str(out), "participant", "--latent-space", *SPACES,
                     "--latent-model", f"pca={small_pca}", "--latents", f"params={params}",
                     "--latents", f"rand={tmp / 'rand.tsv'}", "--n-voxels", "300",
                     "--nprocs", "2", "-w", str(tmp / "work"), "--skip-bids-validation",
                     "--roi-atlas", str(bids / SIM / "atlas-simroi_dseg.nii.gz")]) == 0
    assert main([str(bids), str(out), "group"]) == 0
    return bids, out, reads


def _func(out, sub):
    return out / f"sub-{sub}" / "func"


def _ents(sub):
    return {"sub": sub, "task": "faces"}


def test_encoding_reads_the_bold_data_once(encoded):
    _, _, reads = encoded
    assert len(reads) == 2 * N_RUNS and len(set(reads)) == 2 * N_RUNS


def test_every_space_has_its_maps_with_sidecars(encoded):
    _, out, _ = encoded
    mask = nib.load(_func(out, "01") / "sub-01_task-faces_desc-brain_mask.nii.gz")
    for space in SPACES:
        paths = encoding_paths(_func(out, "01"), _ents("01"), space)
        assert set(paths) == {"r", "r2", "r_ceiling", "r2_ceiling", "p", "significant"}
        for path in paths.values():
            img = nib.load(path)
            assert img.shape == mask.shape and np.allclose(img.affine, mask.affine)
            side = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
            assert side["LatentSpace"] == space and side["NTestImages"] == 20
            assert side["ForwardMapEstimator"] == "ridge" and side["NPermutations"] == 1000
            assert {"Description", "Units", "Null", "Sources", "PenaltyGrid"} <= set(side)
        inside = np.asarray(mask.dataobj) > 0
        p = np.asarray(nib.load(paths["p"]).dataobj)[inside]
        assert np.nanmin(p) == pytest.approx(1 / 1001) and np.nanmax(p) <= 1
        r = np.asarray(nib.load(paths["r"]).dataobj)[inside]
        assert np.nanmax(np.abs(r)) <= 1 and np.isfinite(r).mean() > 0.99


def test_best_space_map_names_the_spaces(encoded):
    _, out, _ = encoded
    paths = table_paths(_func(out, "01"), _ents("01"))
    labels = pd.read_csv(paths["best_labels"], sep="\t")
    assert labels["name"].tolist() == ["none", *SPACES] and labels["index"].tolist() == [0, 1, 2, 3]
    best = np.asarray(nib.load(paths["best"]).dataobj)
    sig = {s: np.asarray(nib.load(encoding_paths(_func(out, "01"), _ents("01"), s)["significant"])
                         .dataobj) > 0 for s in SPACES}
    assert set(np.unique(best)) <= {0, 1, 2, 3}
    # a voxel is labelled only where its space is significant, and 0 where none is
    none = ~np.any(list(sig.values()), axis=0)
    assert not best[none].any()
    for k, s in enumerate(SPACES, start=1):
        assert sig[s][best == k].all()
    assert (best == 1).sum() > (best == 3).sum()  # the generating space labels the most voxels


def _regions(out, sub):
    return pd.read_csv(table_paths(_func(out, sub), _ents(sub))["regions"], sep="\t")


def control_at_chance(regions: pd.DataFrame) -> bool:
    """The check of the control region (no signal in the truth): every space's mean encoding r
    is not above its permutation null (p > 0.01) and close to the null's mean 0."""
    ctrl = regions[regions["region"] == "control"]
    return bool(len(ctrl)) and bool((ctrl["p_region"] > 0.01).all()
                                    and (ctrl["mean_r"].abs() < 0.2).all())


def test_the_generating_space_predicts_best_where_the_signal_is(encoded):
    _, out, _ = encoded
    for sub in ("01", "02"):
        t = _regions(out, sub).set_index(["region", "space"])
        assert set(t.index.get_level_values("region")) == {
            "all", "faceresponsive", "occipital", "temporal", "frontoparietal", "control"}
        for region in ("faceresponsive", "occipital"):
            r2 = t.loc[region, "mean_r2"]
            assert r2["pca"] > r2["params"] and r2["pca"] > r2["rand"], (sub, region)
        face = t.loc["faceresponsive"]
        assert face.loc["pca", "p_region"] < 0.01 and face.loc["pca", "mean_r"] > 0.2
        assert face.loc["rand", "p_region"] > 0.01
        assert control_at_chance(_regions(out, sub))


def test_paired_table_lists_every_pair_and_region(encoded):
    _, out, _ = encoded
    paired = pd.read_csv(table_paths(_func(out, "01"), _ents("01"))["paired"], sep="\t")
    pairs = set(zip(paired["space_a"], paired["space_b"], strict=True))
    assert pairs == {("pca", "params"), ("pca", "rand"), ("params", "rand")}
    assert len(paired) == 3 * 6
    regions = _regions(out, "01").set_index(["region", "space"])
    row = paired[(paired["space_a"] == "pca") & (paired["space_b"] == "rand")
                 & (paired["region"] == "faceresponsive")].iloc[0]
    assert row["mean_r2_a"] == pytest.approx(regions.loc[("faceresponsive", "pca"), "mean_r2"],
                                             rel=1e-4)
    assert row["delta_r2"] == pytest.approx(row["mean_r2_a"] - row["mean_r2_b"], abs=1e-5)
    assert row["delta_r2"] > 0 and row["p_value"] < 0.01
    side = json.loads(table_paths(_func(out, "01"), _ents("01"))["paired"]
                      .with_suffix(".json").read_text())
    assert "sign-flip" in side["p_value"]["Description"]


def test_a_forward_map_fitted_on_the_test_images_fails_the_control_check(encoded, monkeypatch,
                                                                         small_pca):
    """The chance check of the control region catches a map fitted on the test data."""
    from bids_facedecode.bidsio.layout import index_dataset
    from bids_facedecode.bidsio.masks import participant_mask
    from bids_facedecode.config import Settings
    from bids_facedecode.roi import load_atlas, roi_masks
    from bids_facedecode.workflow import encoding_eval, encoding_participant
    from bids_facedecode.workflow.decoding import plan_analyses
    from bids_facedecode.workflow.inputs import collect_inputs
    from bids_facedecode.workflow.spaces import compute_latents, open_spaces
    from bids_facedecode.workflow.streaming import fit_joint_glm

    bids, out, _ = encoded
    settings = Settings(bids_dir=bids, output_dir=out, analysis_level="participant",
                        latent_spaces=("pca",), latent_models={"pca": str(small_pca)},
                        n_voxels=300)
    inputs = collect_inputs(settings, index_dataset(bids), "01", filters={})
    latents = compute_latents(open_spaces(settings, torch.device("cpu")), inputs)
    mask_img = participant_mask(inputs.runs)
    analyses = plan_analyses(settings, inputs, mask_img, saved={})
    ne = fit_joint_glm(inputs, latents, np.asarray(mask_img.dataobj).astype(bool), settings,
                       torch.device("cpu"), None, partitions=(analyses.halves,))
    rois = roi_masks(load_atlas(bids / SIM / "atlas-simroi_dseg.nii.gz"), mask_img)
    honest = encoding_participant.encode_participant(ne, latents, inputs.test_ids,
                                                     analyses.halves, rois, 300, 1000, 0)
    assert control_at_chance(honest.regions)

    real = encoding_eval.forward_maps

    def fitted_on_test(ne, latents, test_ids, first_half=None, grid=None):
        B, maps = real(ne, latents, test_ids, first_half)
        leaky = {}
        for space, (_, Zc, lam) in maps.items():   # least squares of the test betas themselves
            X = np.column_stack([Zc, np.ones(len(Zc))])
            leaky[space] = (np.linalg.lstsq(X, B, rcond=None)[0], Zc, lam)
        return B, leaky

    monkeypatch.setattr(encoding_eval, "forward_maps", fitted_on_test)
    broken = encoding_participant.encode_participant(ne, latents, inputs.test_ids,
                                                     analyses.halves, rois, 300, 1000, 0)
    assert not control_at_chance(broken.regions)


def test_the_participant_report_lays_out_every_space_and_pair(encoded):
    _, out, _ = encoded
    html = (out / "sub-01.html").read_text()
    assert 'id="encoding"' in html and "which space predicts" in html
    regions = _regions(out, "01")
    for space in SPACES:  # every cell of the written region table is in the report
        for region in ("faceresponsive", "control"):
            value = regions[(regions["space"] == space) & (regions["region"] == region)]["mean_r2"]
            assert (f'data-space="{space}" data-region="{region}" data-col="mean_r2" '
                    f'data-value="{value.iloc[0]:.6g}') in html
    for a, b in (("pca", "params"), ("pca", "rand"), ("params", "rand")):
        assert f'data-pair="{a}-{b}" data-region="faceresponsive"' in html
    section = html[html.index('id="encoding"'):]
    assert 'alt="encoding maps" src="data:image/png' in section[:section.index("</section>")]


def test_group_compares_every_pair_across_participants(encoded):
    from bids_facedecode.group import against_chance

    _, out, _ = encoded
    table = pd.read_csv(out / "group" / "group_task-faces_encoding.tsv", sep="\t")
    assert set(zip(table["space_a"], table["space_b"], strict=True)) == {
        ("pca", "params"), ("pca", "rand"), ("params", "rand")}
    row = table[(table["space_a"] == "pca") & (table["space_b"] == "rand")
                & (table["region"] == "faceresponsive")].iloc[0]
    deltas = []
    for sub in ("01", "02"):  # recomputed from the participants' paired tables
        p = pd.read_csv(table_paths(_func(out, sub), _ents(sub))["paired"], sep="\t")
        deltas.append(p[(p["space_a"] == "pca") & (p["space_b"] == "rand")
                        & (p["region"] == "faceresponsive")]["delta_r2"].iloc[0])
    ref = against_chance(np.array(deltas), 0.0, "two-sided")
    assert row["n"] == 2 and row["mean_delta_r2"] == pytest.approx(np.mean(deltas), rel=1e-4)
    assert row["p_t"] == pytest.approx(ref["p_t"], rel=1e-3)
    assert row["n_a_better"] == 2 and row["n_b_better"] == 0
    for space in SPACES:  # the participants share the simulator's grid: mean maps exist
        mean = nib.load(out / "group" / f"group_task-faces_desc-{space}encoding_stat-rsquared"
                        "_statmap.nii.gz")
        maps = [np.nan_to_num(np.asarray(nib.load(encoding_paths(_func(out, s), _ents(s), space)
                                                  ["r2"]).dataobj)) for s in ("01", "02")]
        assert np.allclose(np.asarray(mean.dataobj), np.mean(maps, axis=0), atol=1e-6)
    html = (out / "group.html").read_text()
    assert 'id="encoding-group-table"' in html and 'alt="group encoding maps"' in html


def test_group_pairs_agree_when_participants_list_spaces_in_another_order(tmp_path):
    from bids_facedecode.encoding_group import paired_group_table, read_paired

    cols = ["space_a", "space_b", "region", "mean_r2_a", "mean_r2_b", "delta_r2"]
    rows = {"01": ["x", "y", "all", 0.3, 0.1, 0.2], "02": ["y", "x", "all", 0.2, 0.5, -0.3]}
    tables = {}
    for sub, r in rows.items():
        tables[sub] = tmp_path / f"{sub}.tsv"
        pd.DataFrame([r], columns=cols).to_csv(tables[sub], sep="\t", index=False)
    g = paired_group_table(read_paired(tables, ["x", "y"])).iloc[0]
    assert (g["space_a"], g["space_b"]) == ("x", "y")
    assert g["mean_delta_r2"] == pytest.approx(0.25) and g["n_a_better"] == 2
    assert g["mean_r2_a"] == pytest.approx(0.4)


def test_no_encoding_skips_the_analysis():
    from types import SimpleNamespace

    from bids_facedecode.cli import build_parser
    from bids_facedecode.workflow.encoding_participant import participant_encoding

    assert build_parser().parse_args(["b", "o", "participant"]).no_encoding is False
    assert build_parser().parse_args(["b", "o", "participant", "--no-encoding"]).no_encoding
    inputs = SimpleNamespace(subject="01", test_ids=["a", "b", "c"])
    assert participant_encoding(None, SimpleNamespace(latent_block=True), inputs, None,
                                SimpleNamespace(encoding=False)) is None
