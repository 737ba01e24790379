"""TemplateFlow names for --roi-atlas and the report's template, resolved offline.

Every test builds its own small TemplateFlow home (``tpl-<name>/`` folders of NIfTI files and
labels tables named as TemplateFlow names them) in ``tmp_path`` and forbids network connections,
so that a lookup that tried to download would fail.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import app_args

from bids_facedecode import errors
from bids_facedecode.bidsio import templateflow_lookup as tfl
from bids_facedecode.cli import build_parser, main, settings_from_args
from bids_facedecode.roi import load_atlas, roi_masks

SIM = Path("sourcedata") / "simulation"
MNI = "MNI152NLin2009cAsym"


class NetworkUsed(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any name lookup or socket connection fails the test (as a TemplateFlow download would)."""
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network connection attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _template_description(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template_description.json").write_text(json.dumps(
        {"Name": name, "Identifier": name, "TemplateFlowVersion": "1.0.0"}))


def toy_home(root: Path) -> Path:
    """A home with one template, ``Toy``: a 4-region atlas at res-02 (and an empty res-01
    placeholder, as TemplateFlow's skeleton has), its labels and a T1w image."""
    tpl = root / "tpl-Toy"
    _template_description(tpl, "Toy")
    labels = np.zeros((6, 6, 6), np.int16)
    labels[:3, :3], labels[3:, :3], labels[:3, 3:], labels[3:, 3:] = 1, 2, 3, 4
    labels[:, :, :1] = 0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.Nifti1Image(labels, affine).to_filename(tpl / "tpl-Toy_res-02_atlas-Quad_desc-4_dseg.nii.gz")
    (tpl / "tpl-Toy_res-01_atlas-Quad_desc-4_dseg.nii.gz").write_bytes(b"")
    (tpl / "tpl-Toy_atlas-Quad_desc-4_dseg.tsv").write_text(
        "index\tname\tcolor\n1\tLH_A\t#ff0000\n2\tRH_A\t#00ff00\n3\tLH_B\t#0000ff\n4\tRH_B\t#ffff00\n")
    nib.Nifti1Image(np.ones((6, 6, 6), np.float32), affine).to_filename(tpl / "tpl-Toy_res-02_T1w.nii.gz")
    return root


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    root = toy_home(tmp_path / "templateflow")
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(root))
    return root


def test_spec_and_file_name_are_one_query():
    spec = tfl.parse_atlas_name("Toy:atlas-Quad:desc-4:res-2")
    name = tfl.parse_atlas_name("tpl-Toy_res-02_atlas-Quad_desc-4_dseg.nii.gz")
    assert spec.template == name.template == "Toy"
    assert dict(spec.entities) == dict(name.entities) == {"atlas": "Quad", "desc": "4", "resolution": 2}
    assert tfl.looks_like_templateflow("Toy:atlas-Quad")
    assert tfl.looks_like_templateflow("tpl-Toy_atlas-Quad_dseg.nii.gz")
    assert not tfl.looks_like_templateflow("atlas/tpl-Toy_atlas-Quad_dseg.nii.gz")
    assert not tfl.looks_like_templateflow("atlas-simroi_dseg.nii.gz")


@pytest.mark.parametrize("bad, why", [
    ("Toy:res-2", "name the atlas"), ("Toy:atlas-Quad:hemi-L", "unknown TemplateFlow entity"),
    ("Toy:atlas-Quad:res-two", "must be a number"), ("Toy:atlas-Quad:atlas-X", "twice"),
    ("Toy::atlas-Quad", "not a TemplateFlow spec"), ("tpl-Toy_atlas-Quad_T1w.nii.gz", "file name"),
])
def test_malformed_names_are_usage_errors(bad, why):
    with pytest.raises(errors.UsageError, match=why):
        tfl.parse_atlas_name(bad)


def test_atlas_and_labels_resolved_from_the_home(home):
    for name in ("Toy:atlas-Quad:res-2", "Toy:atlas-Quad:desc-4:res-2",
                 "tpl-Toy_res-02_atlas-Quad_desc-4_dseg.nii.gz"):
        image, labels = tfl.resolve_atlas(name)
        assert image == home / "tpl-Toy" / "tpl-Toy_res-02_atlas-Quad_desc-4_dseg.nii.gz"
        assert labels == home / "tpl-Toy" / "tpl-Toy_atlas-Quad_desc-4_dseg.tsv"
    atlas = load_atlas(image, labels)
    assert atlas.names == {1: "LH_A", 2: "RH_A", 3: "LH_B", 4: "RH_B"}
    mask = nib.Nifti1Image(np.ones((6, 6, 6), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    masks = roi_masks(atlas, mask)
    data = np.asarray(nib.load(image).dataobj).ravel()
    for value, name in atlas.names.items():  # the regions are the image's labels, voxel for voxel
        np.testing.assert_array_equal(masks[name], data == value)


def test_settings_carry_the_resolved_files(home, tmp_path):
    argv = [str(tmp_path), str(tmp_path / "derivatives"), "participant",
            "--roi-atlas", "Toy:atlas-Quad:res-2"]
    s = settings_from_args(build_parser().parse_args(argv), argv)
    assert s.roi_atlas == home / "tpl-Toy" / "tpl-Toy_res-02_atlas-Quad_desc-4_dseg.nii.gz"
    assert s.roi_labels == home / "tpl-Toy" / "tpl-Toy_atlas-Quad_desc-4_dseg.tsv"
    explicit = tmp_path / "mine.tsv"
    s = settings_from_args(build_parser().parse_args([*argv, "--roi-labels", str(explicit)]), argv)
    assert s.roi_labels == explicit  # --roi-labels still wins


@pytest.mark.parametrize("name, code, words", [
    ("Toy:atlas-Nope:res-2", errors.NoInputError, "tpl-Toy atlas-Nope res-2 dseg.nii.gz not found"),
    ("Other:atlas-Quad", errors.NoInputError, "tpl-Other atlas-Quad dseg.nii.gz not found"),
    ("Toy:atlas-Quad:res-1", errors.NoInputError, "empty placeholder (not downloaded)"),
    ("Toy:atlas-Quad", errors.UsageError, "matches 2 files"),
])
def test_missing_atlas_is_one_line_naming_what_and_where(home, tmp_path, capsys, name, code, words):
    out = tmp_path / "derivatives"
    assert main([str(tmp_path), str(out), "participant", "--roi-atlas", name]) == code("x").exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--roi-atlas {name}" in err and words in err, err
    if code is errors.NoInputError:
        assert str(home) in err and "TEMPLATEFLOW_HOME" in err
    assert not out.exists()


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_missing_or_empty_home_is_reported_and_left_alone(tmp_path, monkeypatch, capsys, state):
    root = tmp_path / "tf"
    if state == "empty":
        root.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(root))
    rc = main([str(tmp_path), str(tmp_path / "derivatives"), "participant", "--roi-atlas",
               "Toy:atlas-Quad"])
    assert rc == errors.EXIT_NO_INPUT
    err = capsys.readouterr().err
    assert f"{root} (TEMPLATEFLOW_HOME) is missing or empty" in err
    assert root.exists() is (state == "empty") and (not root.exists() or not any(root.iterdir()))


def test_the_network_guard_catches_a_download(home):
    """Control: TemplateFlow's own get on a placeholder downloads, and the guard stops it."""
    from templateflow.client import TemplateFlowClient

    client = TemplateFlowClient(root=home, autoupdate=False, use_datalad=False)
    with pytest.raises(NetworkUsed):
        client.get("Toy", atlas="Quad", resolution=1, suffix="dseg", extension=".nii.gz")


def test_report_template_from_templateflow_or_nilearn(home, monkeypatch):
    from bids_facedecode.report.maps import choose_background

    mask = nib.Nifti1Image(np.ones((6, 6, 6), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    bg, text = choose_background(mask, ["sub-01_task-faces_space-Toy_desc-preproc_bold.nii.gz"])
    assert "tpl-Toy_res-02_T1w.nii.gz (TemplateFlow)" in text
    np.testing.assert_array_equal(bg.get_fdata(), np.ones((6, 6, 6)))
    # an MNI space the home does not hold: nilearn's bundled MNI152, as without TemplateFlow
    bg, text = choose_background(mask, [f"sub-01_task-faces_space-{MNI}_desc-preproc_bold.nii.gz"])
    assert text.startswith("MNI152 template (nilearn)") and bg is not None
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home / "missing"))
    bg, text = choose_background(mask, ["sub-01_task-faces_space-Toy_desc-preproc_bold.nii.gz"])
    assert text.startswith("brain mask") and bg is mask


@pytest.mark.slow
def test_app_reads_a_templateflow_atlas_and_template(sim_tiny, small_pca, tmp_path, monkeypatch):
    """The participant level on fMRIPrep-shaped data in MNI152NLin2009cAsym with the simulator's
    atlas and a T1w image given as TemplateFlow files: the regions are decoded and the report is
    drawn on the TemplateFlow template."""
    root = tmp_path / "templateflow"
    tpl = root / f"tpl-{MNI}"
    _template_description(tpl, MNI)
    shutil.copy(sim_tiny / SIM / "atlas-simroi_dseg.nii.gz", tpl / f"tpl-{MNI}_res-08_atlas-simroi_dseg.nii.gz")
    shutil.copy(sim_tiny / SIM / "atlas-simroi_dseg.tsv", tpl / f"tpl-{MNI}_atlas-simroi_dseg.tsv")
    mask_img = next((sim_tiny / "derivatives" / "fmriprep").rglob("*_desc-brain_mask.nii.gz"))
    t1w = nib.load(mask_img)
    nib.Nifti1Image(np.asarray(t1w.dataobj, np.float32) * 100, t1w.affine).to_filename(
        tpl / f"tpl-{MNI}_res-08_T1w.nii.gz")
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(root))

    out = tmp_path / "derivatives"
    argv = app_args(sim_tiny, out, small_pca, "participant", "--skip-bids-validation",
                    "--derivatives", str(sim_tiny / "derivatives" / "fmriprep"),
                    "--roi-atlas", f"{MNI}:atlas-simroi:res-8", "--n-permutations", "20",
                    "--n-voxels", "60")
    assert main(argv) == 0
    doc = json.loads(next((out / "sub-01").glob("*_desc-pca_metrics.json")).read_text())
    assert doc["settings"]["roi_atlas"] == str(tpl / f"tpl-{MNI}_res-08_atlas-simroi_dseg.nii.gz")
    rois = {m["roi"] for m in doc["metrics"].values()}
    assert rois == {"all", "occipital", "temporal", "frontoparietal", "control"}
    report = (out / "sub-01.html").read_text()
    assert f"tpl-{MNI}_res-08_T1w.nii.gz (TemplateFlow)" in report
