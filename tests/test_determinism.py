"""Same inputs and seed -> byte-identical tables and JSON, numerically identical maps (same device);
the seed and the library versions are recorded with the outputs."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import write_truth_table

from bids_facedecode import __version__
from bids_facedecode.cli import main

STEM = "sub-01_task-faces"


@pytest.fixture(scope="module")
def runs(sim_tiny, tmp_path_factory) -> dict[str, Path]:
    """Three participant runs: twice with seed 7 (separate work dirs: no shared cache), once with 8."""
    base = tmp_path_factory.mktemp("determinism")
    table = write_truth_table(sim_tiny, base / "truth.tsv")
    outs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = base / name
        assert main([str(sim_tiny), str(out), "participant", "--latent-space", "truth", "--latents",
                     f"truth={table}", "--n-voxels", "100", "--seed", str(seed), "--skip-bids-validation",
                     "-w", str(base / f"work_{name}")]) == 0
        outs[name] = out
    return outs


def _files(out: Path, *patterns: str) -> list[Path]:
    return sorted(p.relative_to(out) for pat in patterns for p in (out / "sub-01").rglob(pat))


def test_tables_and_json_byte_identical(runs):
    a, b = runs["a"], runs["b"]
    files = _files(a, "*.tsv", "*.json")
    assert len(files) >= 7 and files == _files(b, "*.tsv", "*.json")
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_maps_and_decoder_numerically_identical(runs):
    a, b = runs["a"], runs["b"]
    maps = _files(a, "*.nii.gz")
    assert len(maps) >= 5 and maps == _files(b, "*.nii.gz")
    for rel in maps:
        ia, ib = nib.load(a / rel), nib.load(b / rel)
        np.testing.assert_array_equal(np.asarray(ia.dataobj), np.asarray(ib.dataobj), err_msg=str(rel))
        np.testing.assert_array_equal(ia.affine, ib.affine)
    rel = Path("sub-01") / "func" / f"{STEM}_desc-truth_decoder.npz"
    da, db = np.load(a / rel), np.load(b / rel)
    assert sorted(da.files) == sorted(db.files)
    for key in da.files:
        np.testing.assert_array_equal(da[key], db[key], err_msg=key)


def test_seed_and_versions_recorded(runs):
    for name, seed in (("a", 7), ("c", 8)):
        config = json.loads((runs[name] / "logs" / "sub-01_config.json").read_text())
        assert config["seed"] == seed
        versions = config["library_versions"]  # the one record of the versions
        assert "software_versions" not in config
        for dist in ("numpy", "torch", "nilearn", "nibabel", "pybids"):
            assert versions[dist] == version(dist)
        assert config["version"] == __version__
        metrics = json.loads((runs[name] / "sub-01" / f"{STEM}_desc-truth_metrics.json").read_text())
        assert metrics["seed"] == seed


def test_seed_changes_only_the_random_parts(runs):
    """Another seed: the fit (maps, decoded latents) is the same; only permutation p-values may move."""
    a, c = runs["a"], runs["c"]
    rel = Path("sub-01") / "func" / f"{STEM}_desc-truth_decoding.tsv"
    ta, tc = pd.read_csv(a / rel, sep="\t"), pd.read_csv(c / rel, sep="\t")
    decoded = [col for col in ta.columns if col.startswith("decoded_z")]
    pd.testing.assert_frame_equal(ta[decoded], tc[decoded])
    ma = json.loads((a / "sub-01" / f"{STEM}_desc-truth_metrics.json").read_text())["metrics"]
    mc = json.loads((c / "sub-01" / f"{STEM}_desc-truth_metrics.json").read_text())["metrics"]
    assert {k: v["value"] for k, v in ma.items()} == {k: v["value"] for k, v in mc.items()}
