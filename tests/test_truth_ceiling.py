"""The true-weights ceiling of identification on simulated data (workflow.truth_ceiling)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bids_facedecode.bidsio.simulation_truth import read_simulation_truth
from bids_facedecode.workflow.truth_ceiling import CEILING_METRICS, ceiling_identification


def _problem(rng, n=12, K=4, V=60, noise=0.0):
    weights = rng.standard_normal((K + 1, V))
    weights[K] = 1.0 + rng.random(V)                     # face amplitude
    test_true = rng.standard_normal((n, K))
    scale = 5.0 + 5.0 * rng.random(V)                    # BOLD units per PSC
    psc = weights[K][None, :] + test_true @ weights[:K] + noise * rng.standard_normal((n, V))
    return psc * scale[None, :], weights, scale, test_true


def _reference(B, weights, scale, test_true, reference):
    """Normal-equation decoding and correlation ranks, written independently of the package."""
    K = weights.shape[0] - 1
    x = np.linalg.solve(weights @ weights.T, weights @ (B / scale).T).T[:, :K]
    n = len(test_true)
    a, b = x - reference, test_true - reference
    C = np.array([[np.corrcoef(a[i], b[j])[0, 1] for j in range(n)] for i in range(n)])
    pairwise = np.mean([np.mean([C[i, i] > C[i, j] for j in range(n) if j != i]) for i in range(n)])
    nway = np.mean([C[i].argmax() == i for i in range(n)])
    return pairwise, nway


def test_noiseless_truth_identifies_every_image(rng):
    B, w, s, true = _problem(rng)
    got = ceiling_identification(B, w, s, true, true.mean(axis=0))
    assert set(got) == set(CEILING_METRICS)
    assert got["pairwise_latent"] == 1.0 and got["nway_latent"] == 1.0
    assert got["mean_rank_latent"] == 1.0


def test_matches_an_independent_normal_equation_reference(rng):
    B, w, s, true = _problem(rng, noise=6.0)
    ref = rng.standard_normal(true.shape[1]) * 0.3
    got = ceiling_identification(B, w, s, true, ref)
    pairwise, nway = _reference(B, w, s, true, ref)
    assert got["pairwise_latent"] == pytest.approx(pairwise, abs=1e-12)
    assert got["nway_latent"] == pytest.approx(nway, abs=1e-12)
    assert 0.5 < got["pairwise_latent"] < 1.0          # the noise costs something


def test_rank_deficient_truth_still_has_a_ceiling(rng):
    """Voxels that respond to no feature (selected by chance) leave the truth rank-deficient."""
    B, w, s, true = _problem(rng, V=8)
    w[:, 3:] = 0.0
    B[:, 3:] = rng.standard_normal((len(B), 5))
    got = ceiling_identification(B, w, s, true, true.mean(axis=0))
    assert np.isfinite(list(got.values())).all()


def test_wrong_weights_bring_the_ceiling_to_chance():
    """A control that fails when the truth is broken: weights shuffled across voxels."""
    values = []
    for seed in range(30):
        r = np.random.default_rng(seed)
        B, w, s, true = _problem(r, noise=0.5)
        shuffled = w[:, r.permutation(w.shape[1])]
        values.append(ceiling_identification(B, shuffled, s, true, np.zeros(true.shape[1]))
                      ["pairwise_latent"])
    assert abs(np.mean(values) - 0.5) < 0.05


def test_real_datasets_have_no_truth(tmp_path, sim_tiny):
    import nibabel as nib

    mask = nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4))
    assert read_simulation_truth(tmp_path, "01", mask) is None
    # on the simulator's grid but another grid: no ceiling rather than a wrong one
    assert read_simulation_truth(sim_tiny, "01", mask) is None


def test_app_reports_the_ceiling_beside_identification(app_run):
    doc = json.loads((app_run / "sub-01" / "sub-01_task-faces_desc-pca_metrics.json").read_text())
    m = doc["metrics"]
    for name in CEILING_METRICS:
        assert m[name]["ceiling"] is not None, name
    # the params-coded simulated brain, decoded through its true weights, from the same voxels
    assert m["pairwise_latent"]["ceiling"] > 0.9
    assert m["pairwise_latent"]["ceiling"] >= m["pairwise_latent"]["value"] - 0.05
    assert m["pixel_correlation"]["ceiling"] is None


def test_no_ceiling_where_the_truth_has_no_signal(rng, tmp_path):
    """A region whose voxels respond to no code feature has no ceiling (not a crash, not a number)."""
    from bids_facedecode.bidsio.simulation_truth import SimulationTruth
    from bids_facedecode.workflow.truth_ceiling import TruthCeiling

    B, w, s, true = _problem(rng)
    w[:-1] = 0.0
    ids = [f"img{i}" for i in range(len(true))]
    truth = SimulationTruth("params", w, dict(zip(ids, true, strict=True)))
    ceiling = TruthCeiling(truth, ids, ids, tmp_path / "unused.nii.gz", np.ones(w.shape[1], bool),
                           _scale=s)
    assert ceiling.identification(B, np.arange(w.shape[1])) == {}
