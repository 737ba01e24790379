"""Encoding accuracy of every latent space of one participant, from the GLM already accumulated.

Nothing here reads BOLD data: the test-image betas, every space's forward map ``W`` (ridge with
a per-voxel penalty chosen between the split halves, least squares with one run), the face t
that ranks voxels and the space-neutral noise ceiling all come from the normal equations of
the one data pass (:func:`bids_facedecode.workflow.streaming.fit_joint_glm`). Per space it
yields voxel maps (r, R², both relative to the noise ceiling, the permutation p of r and its
Benjamini–Hochberg significance), a table per region (the whole analysed mask, the
``--n-voxels`` most face-responsive voxels, each ``--roi-atlas`` region), the paired
comparison of every pair of spaces and the voxelwise best space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import encoding
from ..errors import DataError
from . import encoding_eval

LOG = logging.getLogger(__name__)
FDR_Q = 0.05           # Benjamini–Hochberg level of the significance maps
ALL, FACE = "all", "faceresponsive"


@dataclass
class ParticipantEncoding:
    """Every encoding result of one participant; voxel arrays are over the analysed mask."""

    spaces: list[str]
    maps: dict[str, dict[str, np.ndarray]]   # space -> r, r2, r_ceiling, r2_ceiling, p, significant
    penalty: dict[str, np.ndarray]           # space -> (V,) relative ridge penalty (0: least squares)
    regions: pd.DataFrame                    # one row per space x region
    paired: pd.DataFrame                     # one row per pair of spaces x region
    best: np.ndarray                         # (V,) int16: 0 none, k the k-th space of ``spaces``
    n_test: int
    n_permutations: int
    estimator: str                           # "ridge" or "ols"
    grid: tuple[float, ...] = ()
    ceiling: bool = False                    # whether a noise ceiling was estimated
    region_voxels: dict[str, np.ndarray] = field(default_factory=dict)

    def estimator_text(self) -> str:
        """One sentence naming the forward-map estimator and how its penalty was chosen."""
        if self.estimator == "ridge":
            return ("ridge regression of each voxel's response on the space's latents (training "
                    "trials only), the penalty of each voxel chosen from the grid "
                    f"{list(self.grid)} (relative to the mean diagonal of the latent block) by "
                    "the held-out error between the odd and even halves of the runs")
        return ("least squares on the training trials (one run: no halves to choose a ridge "
                "penalty from)")


def _noise_ceiling(ne, halves, test_ids: list[str]) -> np.ndarray | None:
    """Space-neutral noise ceiling (V,) from the split halves of the latent-free model."""
    from ..reliability import noise_ceiling
    from .decoding import _half_test_betas

    if halves is None:
        return None
    other = [n for n in ne.names if not n.startswith("z")]
    try:
        return noise_ceiling(*_half_test_betas(halves, ne, other, [f"test_{t}" for t in test_ids]))
    except DataError as exc:
        LOG.warning("encoding: no noise ceiling (%s)", exc)
        return None


def encode_participant(ne, latents, test_ids: list[str], halves=None,
                       rois: dict[str, np.ndarray] | None = None, n_voxels: int = 2000,
                       n_perm: int = 1000, seed: int = 0) -> ParticipantEncoding:
    """Encoding of every space of ``latents`` on the participant's test images.

    Parameters
    ----------
    ne, latents : NormalEquations, JointLatents
        The one accumulated GLM of the participant (all latent blocks) and the spaces' latents.
    test_ids : list of str
        The test images, row by row of ``latents.test``.
    halves : FoldAccumulator, optional
        The split halves (odd/even runs); without them the maps are least squares and no
        ceiling-relative scores are defined.
    rois : dict of region -> bool (V,), optional
        ``--roi-atlas`` regions over the analysed voxels.
    n_voxels : int
        Voxels scored per region (the most face-responsive; all of a smaller region).
    n_perm : int
        Permutations of the test images (voxel and region tests, paired sign flips).
    seed : int

    Returns
    -------
    ParticipantEncoding
    """
    if len(test_ids) < 3:
        raise DataError(f"encoding: {len(test_ids)} test images; at least 3 are needed")
    first = halves.parts.get(0) if halves is not None else None
    B, fmaps = encoding_eval.forward_maps(ne, latents, test_ids, first_half=first)
    nc = _noise_ceiling(ne, halves, test_ids)
    V = ne.n_voxels
    ranked = encoding_eval.region_voxels([(FACE, None), *(rois or {}).items()],
                                         encoding_eval.face_t(ne), n_voxels, V)
    voxels = {ALL: np.arange(V), **ranked}
    rng = np.random.default_rng(seed)
    encs, maps, rows = [], {}, []
    measured = np.isfinite(B).all(0)    # an image absent from the model leaves NaN betas
    if not measured.any():
        raise DataError("encoding: no voxel has betas for every test image")
    vox = {k: v[measured[v]] for k, v in voxels.items()}
    for space, (W, Zc, _) in fmaps.items():
        enc = encoding_eval.space_encoding(space, B, W, W.shape[0] - 1, Zc, nc)
        perm = encoding.permutation_maps(np.nan_to_num(B), enc.predicted, n_perm, rng, vox)
        p = np.where(measured, perm.p, np.nan)
        sig = encoding.fdr_significant(p, FDR_Q)
        maps[space] = {"r": enc.r, "r2": enc.r2, "r_ceiling": enc.r_ceiling,
                       "r2_ceiling": enc.r2_ceiling, "p": p, "significant": sig}
        encs.append(enc)
        for region, idx in vox.items():
            mean_r, p_region = perm.regions[region]
            rows.append({
                "space": space, "region": region, "n_voxels": int(idx.size), "n_test": len(test_ids),
                "mean_r": mean_r, "p_region": p_region, "mean_r2": _mean(enc.r2[idx]),
                "mean_r_ceiling": _mean(enc.r_ceiling[idx]),
                "mean_r2_ceiling": _mean(enc.r2_ceiling[idx]),
                "fraction_significant": float(sig[idx].mean()) if idx.size else float("nan"),
                "n_permutations": int(n_perm)})
    best, _ = encoding.best_space_map(
        {s: np.where(maps[s]["significant"], maps[s]["r"], np.nan) for s in fmaps})
    pairs = _paired_table(encs, B, vox, n_perm, rng)
    return ParticipantEncoding(
        list(fmaps), maps, {s: m[2] for s, m in fmaps.items()}, pd.DataFrame(rows), pairs, best,
        len(test_ids), int(n_perm), "ridge" if first is not None else "ols",
        tuple(_grid()) if first is not None else (), nc is not None, vox)


def _grid() -> tuple[float, ...]:
    from ..encoding_ridge import DEFAULT_GRID

    return DEFAULT_GRID


def _mean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


PAIRED_COLUMNS = ["space_a", "space_b", "region", "n_voxels", "n_test", "mean_r2_a", "mean_r2_b",
                  "delta_r2", "p_value", "test"]


def _paired_table(encs, B, voxels: dict[str, np.ndarray], n_perm: int,
                  rng: np.random.Generator) -> pd.DataFrame:
    """Every pair of spaces on every region: mean R² of each, ΔR² = a − b, sign-flip p."""
    rows = encoding_eval.paired_rows(encs, B, voxels, n_perm, rng)
    table = pd.DataFrame(rows).rename(columns={
        "roi": "region", "value_a": "mean_r2_a", "value_b": "mean_r2_b", "difference": "delta_r2"})
    table["n_test"] = int(B.shape[0])
    table["test"] = "paired sign-flip over test images (two-sided)"
    return table.reindex(columns=PAIRED_COLUMNS)


def participant_encoding(ne, latents, inputs, analyses, settings) -> ParticipantEncoding | None:
    """:func:`encode_participant` with the run's settings; None with ``--no-encoding``, when the
    model has no latent block (data decoded with saved decoders only) or too few test images."""
    if not getattr(settings, "encoding", True):
        return None
    if not latents.latent_block or len(inputs.test_ids) < 3:
        LOG.info("sub-%s: no encoding analysis (%s)", inputs.subject,
                 "no latent block in the GLM" if not latents.latent_block else
                 f"{len(inputs.test_ids)} test images")
        return None
    return encode_participant(ne, latents, list(inputs.test_ids), analyses.halves, analyses.rois,
                              settings.n_voxels, settings.n_permutations, settings.seed)
