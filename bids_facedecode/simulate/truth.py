"""The simulation's known truth in ``sourcedata/simulation``: voxel weights, masks, atlas, stimuli."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .bids_files import TRUTH_DIR, nifti, write_json
from .brain import REGIONS, ROI_NAMES, BrainSpace, SubjectTruth, roi_labels
from .brain_code import CODE_FEATURES, write_code_features
from .config import SimulationConfig
from .faces import PARAM_NAMES


def write_truth(
    root: Path,
    cfg: SimulationConfig,
    brain: BrainSpace,
    truths: dict[int, SubjectTruth],
    stim_rows: list[dict],
    codes: dict[int, tuple[np.ndarray, np.ndarray]],
    test_sha1: list[str],
) -> None:
    """Write ``sourcedata/simulation``: voxel weights, masks, ROI atlas, stimuli, simulation.json.

    ``codes`` are each subject's (train, test) brain-code vectors and ``test_sha1`` the test
    images' SHA-1 digests.
    """
    out = root / TRUTH_DIR
    out.mkdir(parents=True, exist_ok=True)
    zooms = tuple(float(z) for z in np.abs(np.diag(brain.affine)[:3]))
    for sub, tr in truths.items():
        vols = np.zeros(brain.shape + (1 + tr.weights.shape[0],), dtype=np.float32)
        vols[brain.mask, 0] = tr.face_amp
        vols[brain.mask, 1:] = tr.weights.T
        img = nifti(vols, brain.affine, zooms + (1.0,))
        img.header.set_xyzt_units("mm", "unknown")
        img.set_data_dtype(np.float32)
        img.to_filename(out / f"sub-{sub:02d}_desc-weights_voxelweights.nii.gz")
        sel = np.zeros(brain.shape, dtype=np.uint8)
        sel[brain.mask] = tr.selective
        m = nifti(sel, brain.affine, zooms)
        m.set_data_dtype(np.uint8)
        m.to_filename(out / f"sub-{sub:02d}_desc-faceselective_mask.nii.gz")
    atlas = np.zeros(brain.shape, dtype=np.int16)
    atlas[brain.mask] = roi_labels(brain.brain_mm())
    a = nifti(atlas, brain.affine, zooms)
    a.set_data_dtype(np.int16)
    a.to_filename(out / "atlas-simroi_dseg.nii.gz")
    pd.DataFrame({"index": list(range(1, len(ROI_NAMES) + 1)), "name": list(ROI_NAMES)}).to_csv(
        out / "atlas-simroi_dseg.tsv", sep="\t", index=False
    )
    pd.DataFrame(stim_rows).to_csv(out / "stimuli.tsv", sep="\t", index=False, na_rep="n/a")
    code = cfg.code()
    if not code.is_params:
        write_code_features(out / CODE_FEATURES, stim_rows, codes, test_sha1)
    cfg_dict = asdict(cfg)
    info = {
        "generator": {"name": "bids_facedecode-simulate", "version": __version__},
        "config": cfg_dict,
        "seed": cfg.seed,
        "param_names": list(PARAM_NAMES),
        "brain_code": code.label,
        "brain_code_components": [{"code": n, "weight": w} for n, w in code.components],
        "brain_coding": {
            "gender": "+1 male / -1 female (stimuli.tsv: 1 male / 0 female)",
            "other": "the values in stimuli.tsv (standardised, about N(0, 1))",
        } if code.is_params else {
            "features": "braincode_features.tsv: per stimulus (sha1, subject), the code vector "
            "c1..cK the voxels respond to (latents centred on the subject's training faces, "
            "scaled to the total variance of the params code; see brain_code.py)",
        },
        "model": (
            "psc_v(t) = a_v*face(t) + sum_k w_vk*p_k(t) + drift + motion + AR(1) noise; "
            "BOLD = S0_v*(1 + psc/100); imagery trials enter with gain imagery_gain"
        ),
        "noise": {
            "noise_pct": cfg.noise_pct,
            "ar_rho": cfg.ar_rho,
            "drift_pct": 0.0 if cfg.noiseless else cfg.drift_pct,
            "motion_pct": 0.0 if cfg.noiseless else cfg.motion_pct,
            "noiseless": cfg.noiseless,
        },
        "hrf": {
            "model": "spm",
            "oversampling": 50,
            "frame_times": "arange(n_volumes) * RepetitionTime",
            "face_duration_s": cfg.layout.face_duration_s,
            "imagery_duration_s": cfg.layout.img_duration_s,
        },
        "imagery_gain": cfg.imagery_gain,
        "weight_pct": cfg.weight_pct,
        "regions": [
            {
                "name": r.name,
                "roi": r.roi,
                "center_mm_right": list(r.center_mm),
                "radius_mm": r.radius_mm,
                "gain": r.gain,
                "face_amp": r.face_amp,
            }
            for r in REGIONS
        ],
        "subjects": {
            f"sub-{sub:02d}": {
                "centers_mm": {
                    r.name: tr.centers_mm[i].round(2).tolist() for i, r in enumerate(REGIONS)
                },
                "n_selective_voxels": int(tr.selective.sum()),
                "n_responsive_voxels": int((tr.face_amp != 0).sum()),
            }
            for sub, tr in truths.items()
        },
        "files": {
            "weights": "sub-<label>_desc-weights_voxelweights.nii.gz: volume 0 face amplitude "
            "(PSC), volumes 1..K weights (PSC per unit of each code feature: the P "
            "parameters, or the brain code's features)",
            "mask": "sub-<label>_desc-faceselective_mask.nii.gz",
            "atlas": "atlas-simroi_dseg.nii.gz / .tsv",
            "stimuli": "stimuli.tsv: stim_file (relative to stimuli/), sha1, subject, role "
            "(train/test/placeholder), then one column per generative parameter "
            "(gender: 1.0 male, 0.0 female)",
        },
    }
    write_json(out / "simulation.json", info)
