"""The ground truth a simulated dataset keeps in ``sourcedata/simulation/``.

``bids_facedecode-simulate`` writes, beside the BIDS data, what each face-selective voxel
responds to: ``sub-<label>_desc-weights_voxelweights.nii.gz`` (volume 0 the face amplitude, volumes
1..K the weight of each code feature, in percent signal change) and the code vector of every
stimulus (the generative parameters in ``stimuli.tsv``, or ``braincode_features.tsv`` when the
brain code is a model's latents, see ``simulation.json``'s ``brain_code``). Real datasets have
no such folder: :func:`read_simulation_truth` then returns None.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..errors import DataError

LOG = logging.getLogger(__name__)
TRUTH_DIR = Path("sourcedata") / "simulation"


@dataclass(frozen=True)
class SimulationTruth:
    """One simulated participant's true brain code at the analysed voxels."""

    code: str                     # the simulator's brain code label ("params", "pca", ...)
    weights: np.ndarray           # (K+1, V) PSC: rows the K code features, then the face amplitude
    features: dict[str, np.ndarray]  # content hash -> (K,) code vector of that stimulus

    def features_of(self, ids: list[str]) -> np.ndarray:
        """Code vectors of the stimuli ``ids`` (content hashes): array of shape (len(ids), K)."""
        missing = [i for i in ids if i not in self.features]
        if missing:
            raise DataError(f"{TRUTH_DIR}: no code vector for {len(missing)} stimuli "
                            f"(first {missing[0]})")
        return np.stack([self.features[i] for i in ids]).astype(np.float64)


def _params_features(folder: Path) -> dict[str, np.ndarray]:
    """The generative parameters per stimulus, gender coded +1 male / -1 female as the brain codes it."""
    stim = pd.read_csv(folder / "stimuli.tsv", sep="\t", na_values="n/a")
    stim = stim[stim["role"] != "placeholder"].drop_duplicates("sha1")
    params = [c for c in stim.columns if c not in ("stim_file", "sha1", "subject", "role")]
    values = stim[params].to_numpy(np.float64)
    if "gender" in params:
        values[:, params.index("gender")] = values[:, params.index("gender")] * 2 - 1
    return dict(zip(stim["sha1"], values, strict=True))


def _code_features(folder: Path, subject: str) -> dict[str, np.ndarray]:
    table = pd.read_csv(folder / "braincode_features.tsv", sep="\t")
    table = table[table["subject"] == f"sub-{subject}"]
    cols = [c for c in table.columns if c.startswith("c") and c[1:].isdigit()]
    return dict(zip(table["sha1"], table[cols].to_numpy(np.float64), strict=True))


def read_simulation_truth(bids_dir: Path, subject: str, mask_img) -> SimulationTruth | None:
    """The simulator's truth of ``subject`` at the voxels of ``mask_img``, or None.

    None when the dataset has no simulation truth for the participant, or when the analysis
    mask is not on the simulator's grid (e.g. data resampled to another space), logged.

    Parameters
    ----------
    bids_dir : Path
    subject : str
        Label without ``sub-``.
    mask_img : nibabel image
        The analysis mask (V voxels, C order of ``mask[mask]``).
    """
    folder = Path(bids_dir) / TRUTH_DIR
    weights_file = folder / f"sub-{subject}_desc-weights_voxelweights.nii.gz"
    info_file = folder / "simulation.json"
    if not (weights_file.is_file() and info_file.is_file()):
        return None
    try:
        code = str(json.loads(info_file.read_text()).get("brain_code", "params"))
        img = nib.load(weights_file)
        mask = np.asarray(mask_img.dataobj).astype(bool)
        if img.shape[:3] != mask.shape or not np.allclose(img.affine, mask_img.affine, atol=1e-3):
            LOG.info("sub-%s: the analysis mask is not on the simulator's grid; no true-weights "
                     "ceiling", subject)
            return None
        vols = np.asarray(img.dataobj, dtype=np.float64)[mask]        # (V, 1 + K)
        weights = np.vstack([vols[:, 1:].T, vols[:, :1].T])           # (K+1, V), face last
        features = (_params_features(folder) if code == "params"
                    else _code_features(folder, subject))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{folder}: unreadable simulation truth ({exc})") from exc
    K = weights.shape[0] - 1
    if any(v.shape != (K,) for v in features.values()):
        raise DataError(f"{folder}: the code vectors do not have the {K} features of {weights_file.name}")
    return SimulationTruth(code, weights, features)
