"""Shared fixtures: a small simulated dataset, a small PCA model, one full app run.

The simulated datasets are made once per test session (seeded), like nilearn's BIDS fixtures.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).parent))  # simfixtures and helpers

from simfixtures import sim_noiseless_fixture, sim_tiny_fixture  # noqa: E402,F401

from bids_facedecode.simulate.dataset import SimulationConfig, simulate_dataset  # noqa: E402

# 2 subjects x 1 session x 4 runs at 8 mm, low noise: ~300 training trials per subject, seconds to make
APP = SimulationConfig(subjects=2, sessions=1, runs=4, resolution=8.0, seed=11, imagery_every=1,
                       noise=0.5)
APP_D = 16


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def app_dataset(tmp_path_factory) -> Path:
    """A small simulated BIDS dataset for end-to-end tests of the app."""
    return simulate_dataset(tmp_path_factory.mktemp("app") / "bids", APP)


@pytest.fixture(scope="session")
def small_pca(tmp_path_factory) -> Path:
    """A 16-component PCA model fitted on simulator faces (not the dataset's), saved to disk."""
    from bids_facedecode.latents.pca import PCAModel
    from bids_facedecode.simulate.faces import face_corpus

    images, _ = face_corpus(400, seed=5, size=32)
    model = PCAModel.fit(images, n_components=APP_D, image_size=32)
    path = tmp_path_factory.mktemp("models") / "pca16"
    model.save(path)
    return path


def app_args(bids: Path, out: Path, model: Path, *extra: str) -> list[str]:
    """Command line of a quick app run with the small PCA model."""
    return [str(bids), str(out), *extra, "--latent-space", "pca", "--latent-model", f"pca={model}",
            "--n-voxels", "300", "--nprocs", "2", "-w", str(out.parent / "work")]


@pytest.fixture(scope="session")
def app_run(tmp_path_factory, app_dataset, small_pca) -> Path:
    """Both analysis levels run in-process on ``app_dataset``; returns the output folder."""
    from bids_facedecode.cli import main

    out = tmp_path_factory.mktemp("run") / "derivatives"
    assert main(app_args(app_dataset, out, small_pca, "participant")) == 0
    assert main([str(app_dataset), str(out), "group"]) == 0
    return out


# the device parametrisation of numerical tests: CUDA runs where a GPU is present
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
        not __import__("torch").cuda.is_available(), reason="no CUDA device")]),
]


def truth_params(bids: Path) -> pd.DataFrame:
    """The simulator's generative parameters, one row per unique stimulus (``sha1`` + params)."""
    stim = pd.read_csv(bids / "sourcedata" / "simulation" / "stimuli.tsv", sep="\t", na_values="n/a")
    stim = stim[stim.role != "placeholder"].drop_duplicates("sha1")
    return stim.drop(columns=["stim_file", "subject", "role"])


def write_truth_table(bids: Path, path: Path, n_params: int | None = 8) -> Path:
    """A precomputed-latents TSV (keyed by content hash) of the first ``n_params`` true parameters."""
    stim = truth_params(bids)
    cols = [c for c in stim.columns if c != "sha1"][:n_params]
    stim[["sha1", *cols]].to_csv(path, sep="\t", index=False)
    return path
