"""Session-scoped simulated datasets for tests (import the fixtures into a test module).

    from simfixtures import sim_noiseless_fixture, sim_tiny_fixture  # noqa: F401

(the fixtures are named ``sim_tiny`` and ``sim_noiseless``).
"""

from __future__ import annotations

import pytest

from bids_facedecode.simulate.dataset import SimulationConfig, simulate_dataset

TINY = SimulationConfig(
    subjects=1, sessions=1, runs=2, resolution=8.0, seed=7, n_test=20,
    per_run_sidecars=True, fmriprep=True,
)
NOISELESS = SimulationConfig(subjects=1, sessions=1, runs=2, resolution=8.0, seed=3, noiseless=True)


@pytest.fixture(scope="session", name="sim_tiny")
def sim_tiny_fixture(tmp_path_factory):
    """1 subject, 1 session, 2 runs (run 2 with imagery), 8 mm, with fMRIPrep outputs."""
    return simulate_dataset(tmp_path_factory.mktemp("sim") / "tiny", TINY)


@pytest.fixture(scope="session", name="sim_noiseless")
def sim_noiseless_fixture(tmp_path_factory):
    """Like ``sim_tiny`` without noise, drift or motion."""
    return simulate_dataset(tmp_path_factory.mktemp("sim") / "noiseless", NOISELESS)
