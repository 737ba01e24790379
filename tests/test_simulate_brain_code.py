"""The simulator's brain code: which features the voxels respond to, and the recorded truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bids_facedecode.errors import UsageError
from bids_facedecode.images import load_images
from bids_facedecode.latents.registry import load_latent_model
from bids_facedecode.simulate import SimulationConfig, simulate_dataset
from bids_facedecode.simulate.brain_code import (
    TARGET_VARIANCE,
    code_features,
    parse_brain_code,
)
from bids_facedecode.simulate.cli import main as simulate_main

TINY = dict(subjects=1, sessions=1, runs=2, resolution=8.0)


def test_parse_codes_and_mixes():
    assert parse_brain_code("params").is_params
    assert parse_brain_code("pca").label == "pca"
    mix = parse_brain_code("mix", ["pca=3", "params=1"])
    assert mix.components == (("pca", 0.75), ("params", 0.25))
    assert mix.label == "mix(pca=0.75,params=0.25)"
    for code, items, match in [
        ("pca", ["pca=1"], "only with --brain-code mix"),
        ("mix", ["pca=1"], "at least two"),
        ("mix", ["pca=1", "pca=2"], "named twice"),
        ("mix", ["pca=1", "params=-1"], "positive weight"),
        ("mix", ["pca=1", "mix=1"], "cannot be a component"),
        ("nosuchcode", [], "neither params"),
    ]:
        with pytest.raises(UsageError, match=match):
            parse_brain_code(code, items)


def test_latent_code_is_an_exact_scaled_image_of_the_latents():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (40, 64, 64, 3)).astype(np.float32)
    params = rng.normal(size=(40, 24))
    code = code_features(parse_brain_code("pca"), params, images, n_train=30)
    z = load_latent_model("pca").encode(images).astype(np.float64)
    centred = z - z[:30].mean(0)
    scale = code[:30].std(0).sum() / centred[:30].std(0).sum()
    np.testing.assert_allclose(code, centred * scale, rtol=1e-6, atol=1e-9)
    assert code[:30].var(0).sum() == pytest.approx(TARGET_VARIANCE)
    mix = code_features(parse_brain_code("mix", ["pca=0.25", "params=0.75"]), params, images, 30)
    assert mix.shape == (40, z.shape[1] + 24)
    assert mix[:30, : z.shape[1]].var(0).sum() == pytest.approx(0.25 * TARGET_VARIANCE)
    assert mix[:30, z.shape[1]:].var(0).sum() == pytest.approx(0.75 * TARGET_VARIANCE)
    np.testing.assert_array_equal(code_features(parse_brain_code("params"), params, None, 30),
                                  params)


def test_a_pca_coded_brain_records_its_code_and_is_linear_in_pca_latents(tmp_path):
    root = simulate_dataset(tmp_path / "bids", SimulationConfig(**TINY, brain_code="pca"))
    truth = root / "sourcedata" / "simulation"
    info = json.loads((truth / "simulation.json").read_text())
    assert info["brain_code"] == "pca" and info["config"]["brain_code"] == "pca"
    feats = pd.read_csv(truth / "braincode_features.tsv", sep="\t")
    stimuli = pd.read_csv(truth / "stimuli.tsv", sep="\t").drop_duplicates("sha1")
    model = load_latent_model("pca")
    feats = feats.merge(stimuli[["sha1", "stim_file"]], on="sha1")
    assert set(feats["role"]) == {"train", "test"}
    cols = [c for c in feats if c.startswith("c") and c[1:].isdigit()]
    assert len(cols) == model.latent_dim
    # the stimuli as the app reads them (JPEG) are encoded to the recorded code up to an
    # affine map: the brain is linear in the PCA space by construction
    z = model.encode(load_images([root / "stimuli" / f for f in feats["stim_file"]], 64))
    Z1 = np.column_stack([z, np.ones(len(z))])
    C = feats[cols].to_numpy()
    fit = Z1 @ np.linalg.lstsq(Z1, C, rcond=None)[0]
    r2 = 1 - ((C - fit) ** 2).sum() / ((C - C.mean(0)) ** 2).sum()
    assert r2 > 0.99
    import nibabel as nib
    w = nib.load(truth / "sub-01_desc-weights_voxelweights.nii.gz")
    assert w.shape[-1] == 1 + model.latent_dim


def test_cli_takes_the_brain_code_and_rejects_a_bad_one(tmp_path, capsys):
    assert simulate_main([str(tmp_path / "bad"), "--brain-code", "mix"]) == 64
    assert "at least two" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
