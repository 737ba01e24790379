"""The analysis mask of a participant: fMRIPrep brain masks intersected, or computed from raw BOLD."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError
from .bold import compute_brain_mask, load_img
from .layout import RunInfo


def intersect_masks(runs: Sequence[RunInfo]) -> nib.Nifti1Image:
    """Voxels inside every run's brain mask (``desc-brain_mask``), on the runs' grid.

    Returns
    -------
    Nifti1Image of uint8, shape (X, Y, Z)

    Raises
    ------
    DataError
        When a mask is not on its run's grid or the intersection is empty.
    """
    ref = runs[0]
    inter = None
    for run in runs:
        img = load_img(run.mask)
        if img.shape[:3] != run.shape or not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise DataError(f"{run.mask}: mask grid {img.shape[:3]} differs from its BOLD grid {run.shape}")
        m = np.asarray(img.dataobj).reshape(run.shape) > 0
        inter = m if inter is None else inter & m
    if not inter.any():
        raise DataError(f"{runs[-1].mask}: the brain masks of the runs do not overlap")
    out = nib.Nifti1Image(inter.astype(np.uint8), np.asarray(ref.affine))
    out.header.set_xyzt_units("mm")
    return out


def participant_mask(runs: Sequence[RunInfo], cache_dir: Path | None = None) -> nib.Nifti1Image:
    """Intersection of the runs' brain masks when they have them, else an EPI mask of the first run
    (computed while run 1's masked data go into ``cache_dir``, so it is read once)."""
    if all(r.mask is not None for r in runs):
        return intersect_masks(runs)
    img = compute_brain_mask(runs[0].bold, cache_dir)
    if not np.asarray(img.dataobj).any():
        raise DataError(f"{runs[0].bold}: the brain mask is empty")
    return img
