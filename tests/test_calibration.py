"""Calibration of the GLM's p-values on simulated null data: AR(1) noise with a known coefficient,
drift, no signal, the participant designs (HRF-convolved training, test and nuisance trials, the
latent block, cosine drifts and intercepts per run).

With the AR(1) noise model (the default) the false-positive rates of the face t and the latent F
match their nominal levels; with the white-noise model (``--noise-model ols``) they do not: the
same check fails, so it can.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.signal import lfilter

from bids_facedecode import glm
from bids_facedecode.design import build_run_design
from bids_facedecode.glm import noise
from bids_facedecode.workflow.streaming import run_ar1

RHO, N_RUNS, T, TR, D, V = 0.4, 4, 195, 2.0, 8, 40_000
TEST_IDS = ["ta", "tb", "tc", "td"]


def _trials(rng, run: int) -> pd.DataFrame:
    """A run of ds001761's rhythm: a trial every 3 s, mostly training faces, some test faces,
    fixation (the baseline) and one-back repeats."""
    onsets = np.arange(6.0, T * TR - 24.0, 3.0)
    kinds = rng.choice(["train", "test", "null", "oneback"], size=onsets.size, p=[0.7, 0.1, 0.15, 0.05])
    stim = [f"r{run}s{i}" if k == "train" else (rng.choice(TEST_IDS) if k == "test" else "")
            for i, k in enumerate(kinds)]
    return pd.DataFrame({"onset": onsets, "duration": 1.0, "kind": kinds, "stim_id": stim})


@pytest.fixture(scope="module")
def null_runs():
    rng = np.random.default_rng(20190502)
    frame_times = np.arange(T) * TR
    runs = []
    for r in range(N_RUNS):
        trials = _trials(rng, r)
        latents = {s: rng.standard_normal(D) for s in trials.stim_id[trials.kind == "train"]}
        design = build_run_design(trials, frame_times, latents, TEST_IDS, latent_dim=D,
                                  run_label=f"run{r}")
        # AR(1) noise with unit innovations (stationary start), slow drift, a scanner baseline
        u = rng.standard_normal((T, V))
        u[0] /= np.sqrt(1 - RHO**2)
        e = lfilter([1.0], [1.0, -RHO], u, axis=0)
        drift = np.cos(np.pi * np.outer(np.arange(T) + 0.5, [1, 2]) / T) @ rng.standard_normal((2, V))
        Y = (800 + 100 * rng.random(V) + 3 * drift + e).astype(np.float32)
        runs.append((design, Y))
    return runs


def _false_positive_rates(null_runs, model: str) -> dict[str, float]:
    design = null_runs[0][0]
    ne = glm.new_normal_equations(design.shared_names, V, precision="mixed")
    sample = noise.sample_voxels(V)
    rhos = []
    batch = []
    for d, Y in null_runs:
        rho = run_ar1(d, Y, sample) if model == "ar1" else 0.0
        rhos.append(rho)
        batch.append((d.shared, Y, d.nuisance, d.factor, rho))
    glm.accumulate_runs(ne, batch, voxel_chunk=8192)
    zcols = [n for n in ne.names if n.startswith("z")]
    fit = glm.whiten(ne, ne.names, tested=zcols)
    t = fit.t_statistic("face").numpy()
    F = fit.f_statistic().numpy()
    p_t = 2 * stats.t.sf(np.abs(t), fit.dof)
    p_f = stats.f.sf(F, len(zcols), fit.dof)
    out = {"rho": float(np.mean(rhos))}
    for level in (0.001, 0.05):
        out[f"t@{level}"] = float((p_t <= level).mean())
        out[f"F@{level}"] = float((p_f <= level).mean())
    return out


def test_ar1_model_is_calibrated_on_null_data(null_runs):
    fpr = _false_positive_rates(null_runs, "ar1")
    assert fpr["rho"] == pytest.approx(RHO, abs=0.02)  # the known coefficient is recovered
    for stat in ("t", "F"):
        assert 0.0005 <= fpr[f"{stat}@0.001"] <= 0.002, fpr
        assert 0.04 <= fpr[f"{stat}@0.05"] <= 0.06, fpr


def test_white_noise_model_fails_the_same_check(null_runs):
    fpr = _false_positive_rates(null_runs, "ols")
    for stat in ("t", "F"):
        assert fpr[f"{stat}@0.001"] > 0.002 and fpr[f"{stat}@0.05"] > 0.06, fpr
