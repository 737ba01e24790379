"""Regions of interest from an atlas: which analysed voxels belong to which region.

An atlas is a NIfTI of integer labels (a BIDS ``_dseg.nii.gz``) with a labels table
beside it (``_dseg.tsv`` with ``index`` and ``name`` columns, as BIDS and the simulator
write it) or given explicitly. It is resampled to the analysis grid with nearest-neighbour
interpolation when its grid differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .errors import DataError, NoInputError


@dataclass(frozen=True)
class Atlas:
    """A label image and the name of every label."""

    image: nib.Nifti1Image
    names: dict[int, str]   # label value -> region name (0 is background)
    path: Path


def default_labels_path(atlas: Path) -> Path:
    """``<atlas>.tsv`` beside ``<atlas>.nii[.gz]``."""
    name = atlas.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return atlas.with_name(name[: -len(ext)] + ".tsv")
    return atlas.with_suffix(".tsv")


def read_labels(path: Path) -> dict[int, str]:
    """Read a labels table: columns ``index`` and ``name`` (or ``label``), tab-separated.

    Returns
    -------
    dict int -> str
    """
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"{path}: ROI labels table not found (give --roi-labels)")
    table = pd.read_csv(path, sep="\t", dtype=str)
    cols = {c.strip().lower(): c for c in table.columns}
    idx = cols.get("index") or cols.get("label") or cols.get("value")
    name = cols.get("name") or cols.get("region") or (cols.get("label") if idx != cols.get("label") else None)
    if idx is None or name is None:
        raise DataError(f"{path}: ROI labels table needs 'index' and 'name' columns, has "
                        f"{list(table.columns)}")
    out = {}
    for i, n in zip(table[idx], table[name], strict=True):
        try:
            out[int(str(i).strip())] = str(n).strip()
        except ValueError:
            raise DataError(f"{path}: label index {i!r} is not an integer") from None
    if len(set(out.values())) != len(out):
        raise DataError(f"{path}: region names are not unique")
    return out


def load_atlas(atlas: Path, labels: Path | None = None) -> Atlas:
    """Read an atlas and its labels (default: the ``.tsv`` beside the image)."""
    atlas = Path(atlas)
    if not atlas.is_file():
        raise NoInputError(f"{atlas}: --roi-atlas not found")
    try:
        img = nib.load(atlas)
    except Exception as exc:
        raise DataError(f"{atlas}: not a readable NIfTI ({exc})") from exc
    if len(img.shape) != 3:
        raise DataError(f"{atlas}: an atlas must be a 3D label image, got shape {img.shape}")
    names = read_labels(labels or default_labels_path(atlas))
    return Atlas(img, names, atlas)


def roi_masks(atlas: Atlas, mask_img: nib.Nifti1Image, min_voxels: int = 1) -> dict[str, np.ndarray]:
    """Boolean vector over the analysed (in-mask) voxels for every named region.

    Parameters
    ----------
    atlas : Atlas
    mask_img : Nifti1Image
        The analysis mask; voxels are ordered as ``mask[mask]`` (C order).
    min_voxels : int
        Regions with fewer analysed voxels are left out.

    Returns
    -------
    dict str -> bool ndarray of shape (V,)
    """
    mask = np.asarray(mask_img.dataobj).astype(bool)
    img = atlas.image
    if img.shape[:3] != mask.shape or not np.allclose(img.affine, mask_img.affine, atol=1e-3):
        from nilearn.image import resample_to_img

        img = resample_to_img(img, mask_img, interpolation="nearest", force_resample=True,
                              copy_header=True)
    labels = np.rint(np.asarray(img.dataobj)).astype(np.int64)[mask]
    out = {}
    for value, name in sorted(atlas.names.items()):
        if value == 0:
            continue
        m = labels == value
        if m.sum() >= min_voxels:
            out[name] = m
    if not out:
        raise DataError(f"{atlas.path}: no region of the atlas overlaps the brain mask")
    return out
