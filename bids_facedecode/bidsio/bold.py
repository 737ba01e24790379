"""Read BOLD runs: brain mask, masked float32 time series, on-disk cache of masked runs."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError

LOG = logging.getLogger(__name__)


def load_img(path: Path):
    """nibabel image, with a ``DataError`` naming the file when it cannot be read."""
    try:
        return nib.load(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot read NIfTI ({exc})") from exc


def read_volume_data(img, path: Path) -> np.ndarray:
    """All voxels of a 4D image as float32 ``(X, Y, Z, T)`` without a float64 copy."""
    try:
        proxy = img.dataobj
        if hasattr(proxy, "get_unscaled"):
            raw = np.asanyarray(proxy.get_unscaled())
            slope = getattr(proxy, "slope", 1.0)
            inter = getattr(proxy, "inter", 0.0)
            data = raw.astype(np.float32, copy=raw.dtype != np.float32)
            if slope != 1.0:
                data *= np.float32(slope)
            if inter != 0.0:
                data += np.float32(inter)
            return data
        return img.get_fdata(dtype=np.float32)
    except (OSError, EOFError, ValueError, Exception) as exc:
        raise DataError(f"{path}: cannot read image data ({exc})") from exc


def compute_brain_mask(bold: Path) -> nib.Nifti1Image:
    """Brain mask of a raw (native-space) run from its mean image (nilearn ``compute_epi_mask``)."""
    from nilearn.masking import compute_epi_mask

    img = load_img(bold)
    mean = read_volume_data(img, bold).mean(axis=3)
    mean_img = nib.Nifti1Image(mean, img.affine)
    return compute_epi_mask(mean_img)


def load_masked_run(bold: Path, mask: np.ndarray) -> np.ndarray:
    """One run's masked time series.

    Parameters
    ----------
    bold : Path
        4D NIfTI.
    mask : ndarray of bool, shape (X, Y, Z)

    Returns
    -------
    Y : ndarray of shape (T, V), float32
    """
    img = load_img(bold)
    if img.shape[:3] != mask.shape:
        raise DataError(f"{bold}: grid {img.shape[:3]} does not match the brain mask {mask.shape}")
    proxy = img.dataobj
    if hasattr(proxy, "get_unscaled"):
        try:
            raw = np.asanyarray(proxy.get_unscaled())
        except Exception as exc:
            raise DataError(f"{bold}: cannot read image data ({exc})") from exc
        Y = np.ascontiguousarray(raw[mask].T).astype(np.float32)
        slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
        if slope is not None and np.isfinite(slope) and slope not in (0.0, 1.0):
            Y *= np.float32(slope)
        if inter is not None and np.isfinite(inter) and inter != 0.0:
            Y += np.float32(inter)
    else:
        Y = np.ascontiguousarray(read_volume_data(img, bold)[mask].T)
    bad = ~np.isfinite(Y)
    if bad.any():
        raise DataError(f"{bold}: {int(bad.sum())} NaN/inf value(s) inside the brain mask")
    return Y


def cache_key(bold: Path, mask: np.ndarray) -> str:
    """Key of a masked run in the cache: file identity (path, size, mtime) and the mask."""
    st = bold.stat()
    h = hashlib.sha1()
    h.update(str(bold.resolve()).encode())
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(np.packbits(mask).tobytes())
    h.update(str(mask.shape).encode())
    return h.hexdigest()[:20]


def load_masked_run_cached(bold: Path, mask: np.ndarray, cache_dir: Path | None) -> np.ndarray:
    """:func:`load_masked_run` through an on-disk float32 cache (``.npy``, memory-mapped on reuse)."""
    if cache_dir is None:
        return load_masked_run(bold, mask)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{cache_key(bold, mask)}.npy"
    if target.is_file():
        try:
            return np.load(target, mmap_mode="r")
        except (OSError, ValueError):
            LOG.warning("Discarding unreadable cache file %s", target)
    Y = load_masked_run(bold, mask)
    tmp = target.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, Y)
    os.replace(tmp, target)
    return Y
