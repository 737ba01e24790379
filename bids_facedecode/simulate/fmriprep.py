"""fMRIPrep-shaped derivatives of the simulated runs (``derivatives/fmriprep``).

The simulated "native" grid already is the MNI152NLin2009cAsym box, so the preprocessed
BOLD is the raw data as float32; the confounds are computed from the data the way
fMRIPrep does (global signal, CSF and white-matter means, aCompCor, DVARS, framewise
displacement, cosine basis) and the motion parameters are the simulated head motion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPACE = "MNI152NLin2009cAsym"
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
N_ACOMPCOR = 5


def _expand(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """fMRIPrep's expansions: derivative (first row NaN) and squares."""
    d = np.concatenate([[np.nan], np.diff(x)])
    return {
        name: x,
        f"{name}_derivative1": d,
        f"{name}_power2": x**2,
        f"{name}_derivative1_power2": d**2,
    }


def cosine_basis(n_t: int, tr: float, high_pass: float = 1.0 / 128.0) -> np.ndarray:
    """Discrete cosine basis (nilearn's convention, constant dropped): (n_t, K)."""
    order = int(np.floor(2 * n_t * high_pass * tr))
    t = np.arange(n_t)
    cols = [np.sqrt(2.0 / n_t) * np.cos(np.pi / n_t * (t + 0.5) * k) for k in range(1, order)]
    return np.column_stack(cols) if cols else np.zeros((n_t, 0))


def framewise_displacement(motion: np.ndarray, radius: float = 50.0) -> np.ndarray:
    """Power et al. FD from (T, 6) motion (mm, rad); first value NaN."""
    d = np.abs(np.diff(motion, axis=0))
    fd = d[:, :3].sum(axis=1) + radius * d[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def confounds_table(
    data: np.ndarray,
    csf: np.ndarray,
    wm: np.ndarray,
    motion: np.ndarray,
    tr: float,
) -> tuple[pd.DataFrame, dict]:
    """Confound time series of one run.

    Parameters
    ----------
    data : ndarray (T, V) float32, brain voxels' BOLD intensities
    csf, wm : ndarray (V,) bool, tissue masks within the brain voxels
    motion : ndarray (T, 6), estimated head motion (mm, rad)
    tr : float, seconds

    Returns
    -------
    confounds : DataFrame (T rows), fMRIPrep column names (NaN where undefined)
    metadata : dict, the sidecar describing the CompCor and cosine columns
    """
    n_t = data.shape[0]
    cols: dict[str, np.ndarray] = {}
    cols.update(_expand("global_signal", data.mean(axis=1, dtype=np.float64)))
    cols.update(_expand("csf", data[:, csf].mean(axis=1, dtype=np.float64)))
    cols.update(_expand("white_matter", data[:, wm].mean(axis=1, dtype=np.float64)))
    diff = np.diff(data.astype(np.float64), axis=0)
    dvars = np.sqrt((diff**2).mean(axis=1))
    sd = data.std(axis=0, dtype=np.float64)
    std_dvars = dvars / max(float(np.sqrt(2.0) * sd.mean()), 1e-12)
    cols["std_dvars"] = np.concatenate([[np.nan], std_dvars])
    cols["dvars"] = np.concatenate([[np.nan], dvars])
    cols["framewise_displacement"] = framewise_displacement(motion)
    # aCompCor: principal components of the detrended, variance-normalised noise-ROI signal
    basis = np.column_stack([np.ones(n_t), cosine_basis(n_t, tr)])
    roi = data[:, csf | wm].astype(np.float64)
    roi = roi - basis @ np.linalg.lstsq(basis, roi, rcond=None)[0]
    roi /= np.maximum(roi.std(axis=0), 1e-12)
    u, s, _ = np.linalg.svd(roi, full_matrices=False)
    var = s**2 / max(float((s**2).sum()), 1e-12)
    meta: dict = {}
    for k in range(min(N_ACOMPCOR, u.shape[1])):
        name = f"a_comp_cor_{k:02d}"
        cols[name] = u[:, k]
        meta[name] = {
            "Method": "aCompCor",
            "Mask": "combined",
            "Retained": True,
            "SingularValue": float(s[k]),
            "VarianceExplained": float(var[k]),
            "CumulativeVarianceExplained": float(var[: k + 1].sum()),
        }
    cos = cosine_basis(n_t, tr)
    for k in range(cos.shape[1]):
        cols[f"cosine{k:02d}"] = cos[:, k]
        meta[f"cosine{k:02d}"] = {"Method": "Discrete cosine basis", "Cutoff": 128.0}
    for j, name in enumerate(MOTION_COLUMNS):
        cols.update(_expand(name, motion[:, j]))
        meta[name] = {"Description": "head motion (rigid body)", "Units": "mm" if j < 3 else "rad"}
    meta["framewise_displacement"] = {"Description": "Power et al. 2012, radius 50 mm", "Units": "mm"}
    return pd.DataFrame(cols), meta


def tissue_masks(template_in_brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSF (darkest 12 %) and white matter (brightest 20 %) among brain voxels of the T1."""
    lo, hi = np.quantile(template_in_brain, [0.12, 0.80])
    return template_in_brain <= lo, template_in_brain >= hi


def dataset_description(version: str) -> dict:
    """``dataset_description.json`` of the fMRIPrep-shaped derivatives."""
    return {
        "Name": "fMRIPrep - fMRI PREProcessing workflow (simulated outputs)",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "fMRIPrep",
                "Version": "23.2.0",
                "Description": f"fMRIPrep-shaped outputs simulated by bids_facedecode-simulate {version}",
            }
        ],
    }
