"""Re-use of a decoder saved by an earlier participant run (``--decoder-from``).

A lab fits the brain-to-latent map once and decodes a later session (or another dataset
in the same space) with it: the new data's GLM gives the test and imagery betas, the saved
map ``W`` over the saved voxels decodes them. The saved ``_decoder.npz`` holds ``W``
(``(D+1, n_sel)``), ``selected`` (indices into its ``mask``), ``z_mean``, ``mask`` (3D bool),
``affine``, ``space``, ``decoder``, ``ridge`` and the gender axis of the fit (``gender_axis``,
``gender_midpoint``; empty when the fit had no gender labels).

The new data need not have enough training trials for a latent map (a short later session, or
one of test and imagery trials only): when every space has its saved decoder, their GLM then has
no latent block (training trials, if any, enter by the face regressor alone), the latent F map is
not estimated (NaN), and the gender axis comes from the saved decoder when the new data label no
training faces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError, NoInputError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedDecoder:
    """A decoder written by the participant level."""

    path: Path
    space: str
    W: np.ndarray          # (D+1, n_sel), rows z1..zD, face
    selected: np.ndarray   # (n_sel,) indices into mask[mask]
    z_mean: np.ndarray     # (D,)
    mask: np.ndarray       # 3D bool
    affine: np.ndarray     # (4, 4)
    decoder: str = "ols"
    ridge: float = 0.0
    gender_axis: np.ndarray | None = None      # (D,) male − female, when the fit had labels
    gender_midpoint: np.ndarray | None = None  # (D,)

    @property
    def latent_dim(self) -> int:
        return int(self.W.shape[0] - 1)

    def mask_image(self) -> nib.Nifti1Image:
        """The saved analysis mask as a NIfTI image."""
        return nib.Nifti1Image(self.mask.astype(np.uint8), self.affine)


def load_decoder(path: Path) -> SavedDecoder:
    """Read a ``_decoder.npz`` written by the participant level.

    Raises
    ------
    NoInputError, DataError
        Missing file, or a file without the decoder's arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"{path}: --decoder-from file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise DataError(f"{path}: not a readable decoder file ({exc})") from exc
    missing = [k for k in ("W", "selected", "z_mean", "mask", "affine", "space") if k not in data]
    if missing:
        raise DataError(f"{path}: not a bids_facedecode decoder (missing {', '.join(missing)})")
    W = np.asarray(data["W"], np.float64)
    sel = np.asarray(data["selected"], np.int64)
    mask = np.asarray(data["mask"]).astype(bool)
    if W.ndim != 2 or W.shape[1] != sel.size or data["z_mean"].size != W.shape[0] - 1:
        raise DataError(f"{path}: inconsistent decoder arrays (W {W.shape}, {sel.size} voxels, "
                        f"z_mean {data['z_mean'].shape})")
    if mask.ndim != 3 or sel.size and (sel.min() < 0 or sel.max() >= mask.sum()):
        raise DataError(f"{path}: selected voxels do not index the saved mask")
    axis = midpoint = None
    D = W.shape[0] - 1
    if "gender_axis" in data and "gender_midpoint" in data and data["gender_axis"].size:
        axis = np.asarray(data["gender_axis"], np.float64).ravel()
        midpoint = np.asarray(data["gender_midpoint"], np.float64).ravel()
        if axis.size != D or midpoint.size != D:
            raise DataError(f"{path}: gender axis of {axis.size} dimensions for a decoder of D={D}")
    return SavedDecoder(path, str(data["space"]), W, sel, np.asarray(data["z_mean"], np.float64),
                        mask, np.asarray(data["affine"], np.float64),
                        str(data["decoder"]) if "decoder" in data else "ols",
                        float(data["ridge"]) if "ridge" in data else 0.0, axis, midpoint)


def check_grid(saved: SavedDecoder, shape: tuple[int, ...], affine: np.ndarray, where: str) -> None:
    """The new data must lie on the decoder's voxel grid (same shape and affine)."""
    if tuple(shape[:3]) != saved.mask.shape or not np.allclose(affine, saved.affine, atol=1e-3):
        raise DataError(
            f"{where}: the data's grid {tuple(shape[:3])} differs from the decoder's "
            f"{saved.mask.shape} ({saved.path.name}); resample both to one space (e.g. fMRIPrep "
            "outputs in MNI152NLin2009cAsym) before re-using a decoder")


def voxel_index(saved: SavedDecoder, mask: np.ndarray) -> np.ndarray:
    """Indices into ``mask[mask]`` of the decoder's selected voxels.

    Parameters
    ----------
    saved : SavedDecoder
    mask : bool ndarray of the decoder's 3D shape
        The analysis mask of the new data.

    Returns
    -------
    ndarray of shape (n_sel,), int64
    """
    mask = np.asarray(mask, bool)
    if mask.shape != saved.mask.shape:
        raise DataError(f"{saved.path}: mask shape {mask.shape} differs from the decoder's "
                        f"{saved.mask.shape}")
    flat_saved = np.flatnonzero(saved.mask.ravel())[saved.selected]
    position = np.full(mask.size, -1, np.int64)
    position[np.flatnonzero(mask.ravel())] = np.arange(int(mask.sum()))
    idx = position[flat_saved]
    if np.any(idx < 0):
        raise DataError(f"{saved.path}: {int(np.sum(idx < 0))} of the decoder's voxels lie outside "
                        "the new data's brain mask")
    return idx


def reuse_mask(decoders: Sequence[SavedDecoder], run) -> nib.Nifti1Image | None:
    """With ``--decoder-from``, the decoder's own mask becomes the analysis mask (None otherwise).

    Parameters
    ----------
    decoders : sequence of SavedDecoder
        The ``--decoder-from`` decoders (none: no re-use).
    run : RunInfo
        A run of the new data; its grid must be the decoder's.
    """
    if not decoders:
        return None
    first = decoders[0]
    for d in decoders:
        check_grid(d, run.shape, np.asarray(run.affine), str(run.bold))
        if not np.array_equal(d.mask, first.mask):
            raise DataError(f"--decoder-from: {d.path.name} and {first.path.name} were fitted in "
                            "different brain masks")
    LOG.info("analysing in the mask of %s (%d voxels)", first.path.name, int(first.mask.sum()))
    return first.mask_image()
