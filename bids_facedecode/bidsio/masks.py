"""The analysis mask of a participant: fMRIPrep brain masks intersected, or an EPI mask of raw BOLD."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError
from .bold import load_img, read_raw_run, release_thread_buffers
from .layout import RunInfo
from .run_cache import cache_key, cache_store, file_key, run_cache_failed

LOG = logging.getLogger(__name__)


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


def mask_from_mean(mean: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Brain mask of a mean EPI image (nilearn ``compute_epi_mask``)."""
    from nilearn.masking import compute_epi_mask

    return compute_epi_mask(nib.Nifti1Image(mean, affine))


def compute_brain_mask(bold: Path, cache_dir: Path | None = None) -> nib.Nifti1Image:
    """Brain mask of a raw (native-space) run from its mean image (nilearn ``compute_epi_mask``).

    With a ``cache_dir`` the run is read only once: the mask is cached under the run's identity
    and the run's masked data are cached too, so the streamed pass finds them.

    Parameters
    ----------
    bold : Path
        4D NIfTI (usually the participant's first run).
    cache_dir : Path, optional

    Returns
    -------
    nibabel.Nifti1Image, int8 mask on the run's grid.
    """
    target = cache_dir / f"mask-{file_key(bold)}.nii.gz" if cache_dir is not None else None
    if target is not None and target.is_file():
        try:
            img = nib.load(str(target))
            img.get_fdata()  # validate now, not later
            return img
        except Exception:
            LOG.warning("Discarding unreadable cached mask %s", target)
    run = read_raw_run(bold)
    mask_img = mask_from_mean(run.mean_volume(), run.affine)
    if target is not None:
        mask = np.asarray(mask_img.dataobj).astype(bool)
        if mask.any():
            cache_store(cache_dir, cache_key(bold, mask), bold, run.masked(mask), run.slope,
                        run.inter)
        tmp = target.with_name(f".tmp{os.getpid()}-{target.name}")
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            mask_img.to_filename(str(tmp))
            os.replace(tmp, target)
        except OSError as exc:
            run_cache_failed(cache_dir, exc, tmp)
    del run
    release_thread_buffers()
    return mask_img
