"""Re-use of a decoder saved by an earlier participant run (``--decoder-from``).

A lab fits the brain-to-latent map once and decodes a later session (or another dataset
in the same space) with it: the new data's GLM gives the test and imagery betas, the saved
map ``W`` over the saved voxels decodes them. The ``_decoder.npz`` file is written and read by
:mod:`bids_facedecode.bidsio.outputs` (:class:`~bids_facedecode.bidsio.outputs.SavedDecoder`).

The new data need not have enough training trials for a latent map (a short later session, or
one of test and imagery trials only): when every space has its saved decoder, their GLM then has
no latent block (training trials, if any, enter by the face regressor alone), the latent F map is
not estimated (NaN), and the gender axis comes from the saved decoder when the new data label no
training faces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from ..bidsio.outputs import SavedDecoder
from ..errors import DataError

LOG = logging.getLogger(__name__)


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
