"""ROI atlases: labels tables, masks over the analysed voxels, resampling to the analysis grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bids_facedecode.errors import DataError, NoInputError
from bids_facedecode.roi import default_labels_path, load_atlas, read_labels, roi_masks


def _write_atlas(tmp_path, data, affine, names=("occipital", "temporal")):
    path = tmp_path / "atlas-test_dseg.nii.gz"
    nib.Nifti1Image(data.astype(np.int16), affine).to_filename(path)
    rows = "".join(f"{i + 1}\t{n}\n" for i, n in enumerate(names))
    default_labels_path(path).write_text("index\tname\n" + rows)
    return path


def test_masks_on_the_analysis_grid(tmp_path):
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    labels = np.zeros((4, 4, 4))
    labels[:2] = 1
    labels[2:, :2] = 2
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True  # 8 voxels: 4 in x=1 (label 1), 2 in x=2,y=1 (label 2), 2 unlabelled
    atlas = load_atlas(_write_atlas(tmp_path, labels, affine))
    assert atlas.names == {1: "occipital", 2: "temporal"}
    masks = roi_masks(atlas, nib.Nifti1Image(mask.astype(np.uint8), affine))
    expected = labels[mask]
    np.testing.assert_array_equal(masks["occipital"], expected == 1)
    np.testing.assert_array_equal(masks["temporal"], expected == 2)
    assert masks["occipital"].sum() == 4 and masks["temporal"].sum() == 2


def test_atlas_on_a_finer_grid_is_resampled_nearest(tmp_path):
    coarse = np.diag([4.0, 4.0, 4.0, 1.0])
    fine = np.diag([2.0, 2.0, 2.0, 1.0])
    labels = np.zeros((4, 4, 4))
    labels[:2] = 1
    labels[2:] = 2
    fine_labels = labels.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # same regions at 2 mm
    mask = np.ones((4, 4, 4), bool)
    masks = roi_masks(load_atlas(_write_atlas(tmp_path, fine_labels, fine)),
                      nib.Nifti1Image(mask.astype(np.uint8), coarse))
    np.testing.assert_array_equal(masks["occipital"], labels[mask] == 1)


def test_labels_table_errors(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("foo\tbar\n1\ta\n")
    with pytest.raises(DataError, match="'index' and 'name'"):
        read_labels(bad)
    bad.write_text("index\tname\none\ta\n")
    with pytest.raises(DataError, match="not an integer"):
        read_labels(bad)
    with pytest.raises(NoInputError, match="--roi-labels"):
        read_labels(tmp_path / "missing.tsv")
    with pytest.raises(NoInputError, match="--roi-atlas"):
        load_atlas(tmp_path / "missing.nii.gz")


def test_no_overlap_is_an_error(tmp_path):
    affine = np.eye(4)
    labels = np.zeros((3, 3, 3))
    labels[0, 0, 0] = 1
    mask = np.zeros((3, 3, 3), np.uint8)
    mask[2, 2, 2] = 1
    with pytest.raises(DataError, match="overlaps"):
        roi_masks(load_atlas(_write_atlas(tmp_path, labels, affine)), nib.Nifti1Image(mask, affine))
