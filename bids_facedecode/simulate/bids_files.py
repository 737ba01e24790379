"""The simulated dataset's files: BIDS names, formats (JSON, JPEG, NIfTI) and metadata files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from .. import __version__
from ..images import to_uint8
from .config import SimulationConfig
from .events import FIX, IMG, TEST, TRAIN

TASK = "faces"
BIDS_VERSION = "1.9.0"
FIXATION = "placeholders/fixation.png"
TRUTH_DIR = Path("sourcedata") / "simulation"
INT16_MAX = 32000.0


def bids_stem(sub: int, ses: int, run: int) -> str:
    """``sub-XX_ses-YY_task-faces_run-ZZ``."""
    return f"sub-{sub:02d}_ses-{ses:02d}_task-{TASK}_run-{run:02d}"


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as indented JSON with a final newline."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
    """An image of shape (H, W, 3) with values in [0, 1] encoded as JPEG."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def nifti(data: np.ndarray, affine: np.ndarray, zooms: tuple[float, ...]) -> nib.Nifti1Image:
    """A NIfTI image with its zooms, units (mm, s) and the affine as both qform and sform."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def int16_scaling(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantise non-negative float data to int16 with a scanner-like slope (intercept 0).

    Returns
    -------
    raw : ndarray, int16, same shape
    slope : float, such that ``data ≈ raw * slope``
    """
    peak = float(np.max(data))
    slope = float(f"{max(peak, 1e-3) / INT16_MAX:.6g}")
    raw = np.rint(data / slope)
    np.clip(raw, -32768, 32767, out=raw)
    return raw.astype(np.int16), slope


def write_static_files(root: Path, cfg: SimulationConfig) -> None:
    """The files every simulated dataset has: description, sidecars, README, fixation image."""
    write_json(
        root / "dataset_description.json",
        {
            "Name": "bids_facedecode simulated faces dataset (ds001761-shaped)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["bids_facedecode-simulate"],
            "GeneratedBy": [
                {
                    "Name": "bids_facedecode-simulate",
                    "Version": __version__,
                    "Description": "Procedural faces and simulated BOLD with known truth",
                }
            ],
        },
    )
    write_json(
        root / f"task-{TASK}_bold.json",
        {
            "TaskName": TASK,
            "RepetitionTime": cfg.layout.tr,
            "Manufacturer": "Philips",
            "MagneticFieldStrength": 3,
            "ManufacturersModelName": "Achieva",
            "MRAcquisitionType": "2D",
            "EchoTime": 0.03,
            "FlipAngle": 80,
            "Instructions": "Watch the faces; press a button when a face repeats (one-back). "
            "On imagery trials, imagine the test face named before the run",
            "TaskDescription": "Faces shown for 1 s every 3 s with a one-back task; "
            "imagery runs end with a 12 s imagery trial",
        },
    )
    write_json(
        root / f"task-{TASK}_events.json",
        {
            "trial_type": {
                "LongName": "Trial type",
                "Levels": {
                    TRAIN: "a training face, each shown once",
                    TEST: "one of the test faces, shown many times",
                    FIX: "null trial (fixation cross)",
                    IMG: "imagery: the participant imagines a test face",
                },
            },
            "stim_file": {"Description": "image shown, relative to stimuli/"},
            "StimulusPresentation": {
                "SoftwareName": "bids_facedecode-simulate",
                "SoftwareVersion": __version__,
            },
            "oneback": {
                "Description": "1 when the image repeats the previous trial's (one-back target)",
                "Levels": {"0": "new image", "1": "one-back repeat"},
            },
            "imagined_stim_file": {
                "Description": "for Img trials, the test face imagined (relative to stimuli/)"
            },
        },
    )
    readme = (
        "Simulated faces dataset written by bids_facedecode-simulate "
        f"{__version__}.\n\nShaped like OpenNeuro ds001761 (VanRullen & Reddy, 2019): task-faces "
        "runs of procedurally generated faces, test faces repeated across runs, one-back "
        "repeats, null trials and imagery trials. BOLD data are simulated in MNI space from "
        "known voxel weights on the faces' generative parameters; the truth is stored in "
        "sourcedata/simulation/. No human data.\n"
    )
    (root / "README").write_text(readme)
    write_json(
        root / "participants.json",
        {
            "age": {"Description": "age of the participant", "Units": "years"},
            "sex": {"Description": "sex of the participant", "Levels": {"M": "male", "F": "female"}},
        },
    )
    # fixation placeholder: grey with a cross
    fix = np.full((cfg.image_size, cfg.image_size, 3), 0.5, dtype=np.float32)
    c, w = cfg.image_size // 2, max(1, cfg.image_size // 32)
    fix[c - w : c + w, c - 4 * w : c + 4 * w] = 0.0
    fix[c - 4 * w : c + 4 * w, c - w : c + w] = 0.0
    (root / "stimuli" / "placeholders").mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(fix)).save(root / "stimuli" / FIXATION)
