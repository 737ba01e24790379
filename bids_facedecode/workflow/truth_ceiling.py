"""The true-weights ceiling of latent identification on a simulated dataset.

The app estimates the forward map from the training trials; the simulator knows the true one.
The ceiling decodes the same test-image betas over the same voxels with the true map instead
(no estimation error in the map; the test betas' noise remains) and scores the decoded code
vectors against the test images' true code vectors with the same identification metrics.
It is computed in the brain code's own feature space (the generative parameters, or the
latents of the model the simulated brain uses), whatever the decoded space: it says how
identifiable the test images are from these voxels' responses to someone who knows the brain's
code, which is what an estimated map in any space can at best approach. Betas are put in
percent signal change (the truth's unit) with the voxel's mean signal in the first run.
Definitions: ``docs/statistics.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import evaluate
from ..bidsio.bold import load_masked_run
from ..bidsio.simulation_truth import SimulationTruth
from ..errors import DataError

LOG = logging.getLogger(__name__)

#: The metrics that get a ceiling (latent identification, centred and the paper's uncentred).
CEILING_METRICS = ("pairwise_latent", "nway_latent", "mean_rank_latent",
                   "pairwise_latent_uncentred", "nway_latent_uncentred")


def ceiling_identification(B_test: np.ndarray, weights: np.ndarray, scale: np.ndarray,
                           test_true: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Identification of the test images decoded through the true forward map.

    Parameters
    ----------
    B_test : array of shape (N, V_sel)
        Test-image betas (BOLD units) at the decoded voxels.
    weights : array of shape (K+1, V_sel)
        True map in percent signal change: rows the K code features, then the face amplitude.
    scale : array of shape (V_sel,)
        BOLD units per percent signal change of each voxel (its mean signal / 100).
    test_true : array of shape (N, K)
        The test images' true code vectors.
    reference : array of shape (K,)
        Training mean of the code vectors (the centring reference).

    Returns
    -------
    dict
        ``CEILING_METRICS`` -> value.
    """
    K = weights.shape[0] - 1
    psc = np.asarray(B_test, np.float64) / np.asarray(scale, np.float64)[None, :]
    # least squares through the true map, which is uncentred (psc = face + w·c); its
    # minimum-norm solution where the true map is rank-deficient at these voxels (features no
    # selected voxel responds to cannot be decoded, even with the truth)
    coef = np.linalg.lstsq(np.asarray(weights, np.float64).T, psc.T, rcond=None)[0].T
    decoded = coef[:, :K]
    n = len(test_true)
    diag = np.arange(n)
    R = evaluate.identification_ranks(decoded, test_true, reference)
    Ru = evaluate.identification_ranks(decoded, test_true)
    return {
        "pairwise_latent": float(R[diag, diag].mean()),
        "nway_latent": float(evaluate.nway_scores(decoded, test_true, reference)[diag, diag].mean()),
        "mean_rank_latent": float(evaluate.ranks_from_pairwise(R)[diag, diag].mean()),
        "pairwise_latent_uncentred": float(Ru[diag, diag].mean()),
        "nway_latent_uncentred": float(evaluate.nway_scores(decoded, test_true)[diag, diag].mean()),
    }


@dataclass
class TruthCeiling:
    """A participant's truth and what the ceiling needs from the data."""

    truth: SimulationTruth
    test_ids: list[str]
    train_ids: list[str]
    first_bold: Path
    mask: np.ndarray                    # (X, Y, Z) bool, the analysis mask
    _scale: np.ndarray | None = field(default=None, repr=False)

    @property
    def scale(self) -> np.ndarray:
        """(V,) BOLD units per percent signal change: the first run's voxel means / 100 (read once)."""
        if self._scale is None:
            self._scale = load_masked_run(self.first_bold, self.mask).mean(axis=0).astype(np.float64) / 100.0
        return self._scale

    def identification(self, B_test: np.ndarray, voxels: np.ndarray) -> dict[str, float]:
        """:func:`ceiling_identification` at ``voxels`` (indices into the mask) of the test betas
        ``B_test`` (N, len(voxels)); empty where it is not defined: no voxel of the region
        responds to the code in the truth (every decoded vector is then constant)."""
        w = self.truth.weights[:, voxels]
        if not np.any(w[:-1]):
            return {}
        test_true = self.truth.features_of(self.test_ids)
        reference = self.truth.features_of(self.train_ids).mean(axis=0) if self.train_ids \
            else np.zeros(w.shape[0] - 1)
        try:
            return ceiling_identification(B_test, w, self.scale[voxels], test_true, reference)
        except DataError as exc:  # e.g. a decoded vector constant over the features
            LOG.info("no true-weights ceiling at %d voxels: %s", len(voxels), exc)
            return {}
