"""Per latent space: solve the GLM, select voxels, decode, reconstruct and evaluate."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import decode, evaluate, glm
from ..bidsio.stimuli import gender_from_name
from ..config import Settings
from ..images import load_images
from .inputs import ParticipantInputs
from .spaces import JointLatents, LatentSpace

LOG = logging.getLogger(__name__)
FACE = "face"


@dataclass
class SpaceResult:
    """Decoding results of one latent space for one participant."""

    space: str
    f_map: np.ndarray             # (V,)
    face_t: np.ndarray            # (V,)
    selected: np.ndarray          # (n_sel,) voxel indices into the mask
    W: np.ndarray                 # (D+1, n_sel): rows z1..zD, face
    z_mean: np.ndarray            # (D,)
    test_true: np.ndarray         # (N, D)
    test_decoded: np.ndarray      # (N, D)
    imagery_decoded: np.ndarray   # (M, D)
    gender_axis: np.ndarray | None
    gender_midpoint: np.ndarray | None
    shown: np.ndarray | None      # (N, S, S, 3)
    reconstructions: np.ndarray | None
    imagery_reconstructions: np.ndarray | None
    metrics: dict
    per_image: pd.DataFrame
    dof: int


def decode_space(space: LatentSpace, ne_all, inputs: ParticipantInputs, latents: JointLatents,
                 settings: Settings) -> SpaceResult:
    """Solve the space's GLM, select voxels, decode test and imagery faces, evaluate."""
    zcols = latents.z_columns(space.name)
    other = [n for n in ne_all.names if not n.startswith("z")]
    ne = glm.subset(ne_all, zcols + other)
    betas = glm.solve(ne)
    f_map = glm.f_statistic(ne, betas, zcols).cpu().numpy()
    face_t = glm.t_statistic(ne, betas, FACE).cpu().numpy()
    n_sel = min(settings.n_voxels, f_map.size)
    if settings.n_voxels > f_map.size:
        LOG.warning("--n-voxels %d exceeds the %d brain voxels; using all", settings.n_voxels, f_map.size)
    selected = decode.select_voxels(np.nan_to_num(f_map, nan=-np.inf), n_sel)
    B = betas[:, torch.as_tensor(selected, device=betas.device)].cpu().numpy()
    D = len(zcols)
    W = B[: D + 1]                                   # z1..zD, face
    names = ne.names
    test_rows = [names.index(f"test_{t}") for t in inputs.test_ids]
    img_rows = [names.index(f"img_{t}") for t in inputs.imagery_ids]
    z_mean = latents.means[space.name]
    test_dec = decode.decode_latents(B[test_rows], W, z_mean, face_index=D)
    img_dec = (decode.decode_latents(B[img_rows], W, z_mean, face_index=D) if img_rows
               else np.zeros((0, D), np.float32))
    test_true = latents.test[space.name]

    metrics, per_image = {}, pd.DataFrame({
        "stim_id": inputs.test_ids,
        "stim_file": [inputs.index.name(s) for s in inputs.test_ids],
        "gender": [gender_from_name(inputs.index.name(s)) or "n/a" for s in inputs.test_ids],
    })
    rng = np.random.default_rng(settings.seed)
    per_lat, mean_lat = evaluate.pairwise_identification(test_dec, test_true)
    mean_lat = float(mean_lat)
    metrics["pairwise_latent"] = {
        "value": mean_lat, "chance": 0.5, "n": len(test_true), "test": "permutation",
        "p_value": evaluate.identification_permutation_p(test_dec, test_true, 1000, rng),
    }
    per_image["pairwise_latent"] = per_lat
    per_image["latent_correlation"] = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(test_dec, test_true, strict=True)]

    shown = recon = img_recon = None
    if space.can_reconstruct:
        shown = load_images([inputs.index.path(s) for s in inputs.test_ids], space.model.image_size)
        recon = space.model.decode(test_dec)
        flat_r, flat_s = recon.reshape(len(recon), -1), shown.reshape(len(shown), -1)
        per_img, mean_img = evaluate.pairwise_identification(flat_r, flat_s)
        mean_img = float(mean_img)
        metrics["pairwise_image"] = {
            "value": mean_img, "chance": 0.5, "n": len(shown), "test": "permutation",
            "p_value": evaluate.identification_permutation_p(flat_r, flat_s, 1000, rng),
        }
        per_image["pairwise_image"] = per_img
        per_image["pixel_correlation"] = evaluate.pixel_correlation(recon, shown)
        per_image["ssim"] = evaluate.ssim(recon, shown)
        metrics["pixel_correlation"] = {"value": float(per_image["pixel_correlation"].mean()),
                                        "chance": None, "n": len(shown), "test": None, "p_value": None}
        metrics["ssim"] = {"value": float(per_image["ssim"].mean()), "chance": None,
                           "n": len(shown), "test": None, "p_value": None}
        if len(img_dec):
            img_recon = space.model.decode(img_dec)

    axis = midpoint = None
    train_gender = np.array([gender_from_name(inputs.index.name(s)) for s in inputs.train_ids])
    test_gender = per_image["gender"].to_numpy()
    if {"M", "F"} <= set(train_gender) and {"M", "F"} <= set(test_gender):
        labelled = np.isin(train_gender, ["M", "F"])
        axis, midpoint = evaluate.gender_axis(latents.train_raw[space.name][labelled],
                                              train_gender[labelled] == "M")
        ok = np.isin(test_gender, ["M", "F"])
        is_male = test_gender[ok] == "M"
        acc, n, p = evaluate.gender_accuracy(test_dec[ok], is_male, axis, midpoint)
        metrics["gender_accuracy"] = {"value": float(acc), "chance": 0.5, "n": int(n),
                                      "test": "binomial", "p_value": float(p)}
        correct = ((test_dec[ok] - midpoint) @ axis > 0) == is_male
        per_image["gender_correct"] = pd.array([None] * len(per_image), dtype="boolean")
        per_image.loc[ok, "gender_correct"] = correct
    else:
        LOG.warning("sub-%s %s: gender not evaluated (file names carry no M/F prefix for both "
                    "genders)", inputs.subject, space.name)

    if img_rows:
        in_test = [i for i, s in enumerate(inputs.imagery_ids) if s in inputs.test_ids]
        if in_test and len(inputs.test_ids) > 1:
            idx = np.array([inputs.test_ids.index(inputs.imagery_ids[i]) for i in in_test])
            per_imag, mean_imag = evaluate.imagery_identification(img_dec[in_test], idx, test_true)
            metrics["imagery_pairwise"] = {
                "value": float(mean_imag), "chance": 0.5, "n": len(in_test), "test": "permutation",
                "p_value": evaluate.imagery_permutation_p(img_dec[in_test], idx, test_true, 1000, rng),
            }
    return SpaceResult(space.name, f_map, face_t, selected, W, z_mean, test_true, test_dec, img_dec,
                       axis, midpoint, shown, recon, img_recon, metrics, per_image, ne.dof)


