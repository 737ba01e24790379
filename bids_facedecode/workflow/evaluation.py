"""Every metric of one decoding, as the participant's metrics JSON and tables hold them.

Each metric is a dict ``value, chance, n, test, p_value, baseline, ceiling, alternative`` plus
the analysis labels (decoder, region, voxel selection); ``chance`` is the exact mean of the
metric's null, ``alternative`` the side the test looks at (``greater``, or ``less`` for the
mean rank). Definitions, nulls and how they differ from the paper: ``docs/statistics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import evaluate, gender, quality
from .spaces import LatentSpace

#: Base names of the metrics, in the order the reports show them.
METRICS = (
    "pairwise_latent", "nway_latent", "mean_rank_latent", "pairwise_image", "nway_image",
    "gender_balanced_accuracy", "gender_accuracy", "imagery_pairwise", "pixel_correlation", "ssim",
    "pairwise_latent_uncentred", "nway_latent_uncentred", "pairwise_image_uncentred",
    "imagery_pairwise_uncentred",
)


def metric(value, chance, n, test, p, *, baseline=None, ceiling=None, alternative="greater",
           **labels) -> dict:
    """One metric's record (see the module docstring)."""
    return {"value": value, "chance": chance, "n": n, "test": test, "p_value": p,
            "baseline": baseline, "ceiling": ceiling, "alternative": alternative, **labels}


@dataclass
class EvalContext:
    """What every evaluation of one latent space shares."""

    space: LatentSpace
    test_true: np.ndarray                # (N, D)
    shown: np.ndarray | None             # (N, S, S, 3)
    test_gender: np.ndarray              # (N,) "M" / "F" / other
    axis: np.ndarray | None              # (D,) gender axis
    imagery_index: np.ndarray | None     # (M',) test row of each labelled imagery trial
    imagery_rows: list[int]              # rows of the decoded imagery that are test faces
    n_perm: int
    rng: np.random.Generator
    _mean_faces: dict = field(default_factory=dict)

    def mean_face(self, z_mean: np.ndarray) -> np.ndarray:
        """The reconstruction of the training mean latent (the image-space reference)."""
        key = np.asarray(z_mean, np.float64).tobytes()
        if key not in self._mean_faces:
            self._mean_faces[key] = np.asarray(
                self.space.model.decode(np.asarray(z_mean, np.float32)[None]), np.float64)[0]
        return self._mean_faces[key]


def _test_name(t: evaluate.PermutationTest) -> str:
    return "permutation (exact)" if t.exact else f"permutation (Monte-Carlo, {t.n_perm})"


def _identification(ctx: EvalContext, decoded, true, reference, kind: str, labels: dict,
                    m: dict, per: dict) -> None:
    """Pairwise and n-way identification (centred on ``reference`` and uncentred), one
    shared set of permutations."""
    n = len(true)
    R = evaluate.identification_ranks(decoded, true, reference)
    S = evaluate.nway_scores(decoded, true, reference)
    Ru = evaluate.identification_ranks(decoded, true)
    Su = evaluate.nway_scores(decoded, true)
    stack = [R, S, Ru, Su]
    if kind == "latent":
        stack.append(-evaluate.ranks_from_pairwise(R))
    t = evaluate.permutation_test(np.stack(stack), np.arange(n), ctx.n_perm, ctx.rng)
    test = _test_name(t)
    diag = np.arange(n)
    per[f"pairwise_{kind}"] = R[diag, diag]
    per[f"pairwise_{kind}_uncentred"] = Ru[diag, diag]
    per[f"nway_{kind}"] = S[diag, diag]
    m[f"pairwise_{kind}"] = metric(float(t.observed[0]), 0.5, n, test, float(t.p[0]), **labels)
    m[f"nway_{kind}"] = metric(float(t.observed[1]), 1.0 / n, n, test, float(t.p[1]), **labels)
    m[f"pairwise_{kind}_uncentred"] = metric(float(t.observed[2]), 0.5, n, test, float(t.p[2]),
                                             **labels)
    if kind == "latent":
        m["nway_latent_uncentred"] = metric(float(t.observed[3]), 1.0 / n, n, test, float(t.p[3]),
                                            **labels)
        per["rank_latent"] = evaluate.ranks_from_pairwise(R)[diag, diag]
        m["mean_rank_latent"] = metric(float(-t.observed[4]), (n + 1) / 2, n, test, float(t.p[4]),
                                       alternative="less", **labels)


def evaluate_decoded(ctx: EvalContext, test_dec: np.ndarray, img_dec: np.ndarray, z_mean: np.ndarray,
                     labels: dict) -> tuple[dict, dict, np.ndarray | None]:
    """Every metric of one decoding.

    Parameters
    ----------
    test_dec : array of shape (N, D), decoded test latents
    img_dec : array of shape (M, D), decoded imagery trials (M may be 0)
    z_mean : array of shape (D,), the training mean of the decoder's latents (the reference)
    labels : analysis labels stored with every metric

    Returns
    -------
    metrics : dict base name -> metric record
    per_image : dict column -> array of shape (N,)
    recon : array of shape (N, S, S, 3) or None
    """
    m, per = {}, {}
    zm = np.asarray(z_mean, np.float64)
    _identification(ctx, test_dec, ctx.test_true, zm, "latent", labels, m, per)
    C = evaluate.correlation_matrix(test_dec, ctx.test_true, zm)
    per["latent_correlation"] = np.diagonal(C).copy()
    recon = None
    if ctx.shown is not None:
        recon = ctx.space.model.decode(test_dec)
        face = ctx.mean_face(zm)
        flat_r, flat_s = recon.reshape(len(recon), -1), ctx.shown.reshape(len(ctx.shown), -1)
        _identification(ctx, flat_r, flat_s, face.reshape(-1), "image", labels, m, per)
        per["pixel_correlation"] = quality.pixel_correlation(recon, ctx.shown)
        per["ssim"] = quality.ssim(recon, ctx.shown)
        base_r, base_s = quality.mean_face_baseline(face, ctx.shown)
        per["mean_face_pixel_correlation"], per["mean_face_ssim"] = base_r, base_s
        for k, base in (("pixel_correlation", base_r), ("ssim", base_s)):
            m[k] = metric(float(np.nanmean(per[k])), None, len(flat_s), None, None,
                          baseline=float(np.nanmean(base)), **labels)
    if ctx.axis is not None:
        ok = np.isin(ctx.test_gender, ["M", "F"])
        is_male = ctx.test_gender[ok] == "M"
        g = gender.gender_accuracy(test_dec[ok], is_male, ctx.axis, zm)
        top = gender.gender_accuracy(ctx.test_true[ok], is_male, ctx.axis, zm)
        test = "exact label permutation (Fisher)"
        m["gender_balanced_accuracy"] = metric(g.balanced_accuracy, g.balanced_chance, g.n, test, g.p,
                                               ceiling=top.balanced_accuracy, **labels)
        m["gender_accuracy"] = metric(g.accuracy, g.chance, g.n, test, g.p, ceiling=top.accuracy,
                                      **labels)
        correct = pd.array([None] * len(test_dec), dtype="Float64")
        correct[ok] = g.correct
        per["gender_correct"] = correct
        per["gender_projection"] = gender.gender_projection(test_dec, ctx.axis, zm)
    if ctx.imagery_index is not None and len(img_dec):
        dec = img_dec[ctx.imagery_rows]
        R, idx = evaluate.imagery_ranks(dec, ctx.imagery_index, ctx.test_true, zm)
        Ru, _ = evaluate.imagery_ranks(dec, ctx.imagery_index, ctx.test_true)
        t = evaluate.permutation_test(np.stack([R, Ru]), idx, ctx.n_perm, ctx.rng)
        for k, name in enumerate(("imagery_pairwise", "imagery_pairwise_uncentred")):
            m[name] = metric(float(t.observed[k]), float(t.chance[k]), len(idx), _test_name(t),
                             float(t.p[k]), **labels)
    return m, per, recon
