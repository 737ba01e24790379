"""Encoding accuracy on a simulated participant whose brain is coded in a known space."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from bids_facedecode.bidsio.layout import index_dataset
from bids_facedecode.bidsio.masks import participant_mask
from bids_facedecode.config import Settings
from bids_facedecode.simulate import SimulationConfig, simulate_dataset
from bids_facedecode.simulate.brain_code import write_params_table
from bids_facedecode.workflow import encoding_eval
from bids_facedecode.workflow.inputs import collect_inputs
from bids_facedecode.workflow.spaces import compute_latents, open_spaces
from bids_facedecode.workflow.streaming import fit_joint_glm


@pytest.fixture(scope="module")
def pca_coded(tmp_path_factory, small_pca):
    """A participant whose voxels respond linearly to the latents of the small PCA model."""
    tmp = tmp_path_factory.mktemp("enc")
    cfg = SimulationConfig(subjects=1, sessions=1, runs=10, resolution=8.0, noise=0.3,
                           brain_code=str(small_pca), imagery_every=0)
    bids = simulate_dataset(tmp / "bids", cfg)
    settings = Settings(bids_dir=bids, output_dir=(tmp / "out").resolve(),
                        analysis_level="participant", latent_spaces=("pca", "params"),
                        latent_models={"pca": str(small_pca)},
                        latents={"params": str(write_params_table(bids, tmp / "params.tsv"))})
    layout = index_dataset(settings.bids_dir)
    device = torch.device("cpu")
    spaces = open_spaces(settings, device)
    inputs = collect_inputs(settings, layout, "01", filters={})
    latents = compute_latents(spaces, inputs)
    mask_img = participant_mask(inputs.runs)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    ne = fit_joint_glm(inputs, latents, mask, settings, device, cache_dir=None)
    B, maps = encoding_eval.forward_maps(ne, latents, inputs.test_ids)
    truth = bids / "sourcedata" / "simulation"
    # the simulator's brain grid and the analysis mask share the MNI box: resample by affine
    sel = nib.load(truth / "sub-01_desc-faceselective_mask.nii.gz")
    from nilearn.image import resample_to_img
    sel = resample_to_img(sel, mask_img, interpolation="nearest", force_resample=True,
                          copy_header=True)
    selective = np.asarray(sel.dataobj).astype(bool)[mask]
    return B, maps, selective


def _encodings(B, maps):
    return [encoding_eval.space_encoding(s, B, W, W.shape[0] - 1, Zc, None)
            for s, (W, Zc, _) in maps.items()]


def test_the_generating_space_predicts_better_where_the_signal_is(pca_coded):
    B, maps, selective = pca_coded
    encs = {e.space: e for e in _encodings(B, maps)}
    assert selective.sum() > 50 and (~selective).sum() > 1000
    voxels = {"signal": np.flatnonzero(selective), "null": np.flatnonzero(~selective)}
    rng = np.random.default_rng(0)
    rows = {(r["roi"], r["metric"]): r
            for r in encoding_eval.encoding_rows(encs["pca"], B, voxels, 199, rng)}
    assert rows["signal", "encoding_r"]["value"] > 0.2
    assert rows["signal", "encoding_r"]["p_value"] == pytest.approx(1 / 200)
    # where the truth has no weights, the encoding r is not above its permutation null (whose
    # mean, the reported chance, is 0). Its region mean need not be near 0 itself: noise shared
    # by all voxels (motion, uncorrected on raw data) gives every voxel the same sign of r, and
    # the permutation of test images, the same for all voxels, keeps that structure in the null
    null = rows["null", "encoding_r"]
    assert null["chance"] == 0.0 and null["p_value"] > 0.01
    paired = encoding_eval.paired_rows([encs["pca"], encs["params"]], B,
                                       {"signal": voxels["signal"]}, 199, rng)
    # the generating space explains more of the test images' variance; with 20 test images the
    # paired test's power is modest (its calibration is tested in test_encoding.py)
    assert paired[0]["value_a"] > paired[0]["value_b"] + 0.05 and paired[0]["p_value"] < 0.2
    other = {(r["roi"], r["metric"]): r
             for r in encoding_eval.encoding_rows(encs["params"], B, voxels, 199, rng)}
    assert rows["signal", "encoding_r"]["value"] > other["signal", "encoding_r"]["value"]


def test_a_leaky_prediction_is_caught_by_the_null_region_check(pca_coded):
    # the same check fails when the "prediction" is the measured data plus noise (a leak)
    B, maps, selective = pca_coded
    rng = np.random.default_rng(1)
    enc = _encodings(B, maps)[0]
    enc.predicted = B + rng.normal(scale=np.nanstd(B), size=B.shape)
    null = [r for r in encoding_eval.encoding_rows(enc, B, {"null": np.flatnonzero(~selective)},
                                                   199, rng) if r["metric"] == "encoding_r"][0]
    assert null["value"] > 0.3 and null["p_value"] < 0.01
