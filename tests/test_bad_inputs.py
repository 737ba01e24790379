"""Bad input: a one-line error naming the file, a documented exit code, no partial outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import pandas as pd
import pytest

from bids_facedecode import errors
from bids_facedecode.cli import main

RUN1 = "sub-01/ses-01/func/sub-01_ses-01_task-faces_run-01"


@pytest.fixture
def dataset(sim_tiny, tmp_path) -> Path:
    """A private copy of the tiny simulated dataset to break."""
    dst = tmp_path / "bids"
    shutil.copytree(sim_tiny, dst, ignore=shutil.ignore_patterns("derivatives"))
    return dst


def _run(bids: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main([str(bids), str(out), "participant", "--latent-space", "truth", "--latents",
                 f"truth={_truth_table(bids)}", "-w", str(out.parent / "work"), *extra])
    return code, capsys.readouterr().err


def _truth_table(bids: Path) -> Path:
    path = bids.parent / "truth.tsv"
    if not path.exists():
        stim = pd.read_csv(bids / "sourcedata" / "simulation" / "stimuli.tsv", sep="\t", na_values="n/a")
        stim = stim[stim.role != "placeholder"].drop_duplicates("sha1")
        cols = [c for c in stim.columns if c not in ("stim_file", "sha1", "subject", "role")][:8]
        stim[["sha1", *cols]].to_csv(path, sep="\t", index=False)
    return path


def _assert_clean_failure(code: int, err: str, expected_code: int, names: str, out: Path) -> None:
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line.startswith("bids_facedecode: error")]
    assert len(lines) == 1, err
    assert names in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_missing_events_file(dataset, tmp_path, capsys):
    (dataset / f"{RUN1}_events.tsv").unlink()
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, f"{RUN1.split('/')[-1]}_events.tsv", out)


def test_missing_stimulus(dataset, tmp_path, capsys):
    events = pd.read_csv(dataset / f"{RUN1}_events.tsv", sep="\t")
    row = events.index[events.trial_type == "train_face"][0]
    events.loc[row, "stim_file"] = "sub01/run01/M9999_missing.jpg"
    events.to_csv(dataset / f"{RUN1}_events.tsv", sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "M9999_missing.jpg", out)
    assert "_events.tsv" in err


def test_tr_differs_between_sidecar_and_header(dataset, tmp_path, capsys):
    sidecar = dataset / f"{RUN1}_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 2.5
    sidecar.write_text(json.dumps(meta))
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, f"{RUN1.split('/')[-1]}_bold.nii.gz", out)
    assert "RepetitionTime" in err


def test_nan_in_events(dataset, tmp_path, capsys):
    path = dataset / f"{RUN1}_events.tsv"
    lines = path.read_text().splitlines()
    cells = lines[5].split("\t")
    cells[0] = "n/a"
    lines[5] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, f"{RUN1.split('/')[-1]}_events.tsv", out)
    assert "onset" in err


def test_empty_selection_of_runs(dataset, tmp_path, capsys):
    filt = tmp_path / "filter.json"
    filt.write_text(json.dumps({"bold": {"run": [7]}}))
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--bids-filter-file", str(filt))
    _assert_clean_failure(code, err, errors.EXIT_NO_FILES_SELECTED, "sub-01", out)


def test_filter_file_not_json(dataset, tmp_path, capsys):
    filt = tmp_path / "filter.json"
    filt.write_text("{bold: run 1}")
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--bids-filter-file", str(filt))
    _assert_clean_failure(code, err, errors.EXIT_USAGE, "filter.json", out)


def test_output_dir_inside_bids_dir(dataset, capsys):
    out = dataset / "results"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_USAGE, str(out), out)


def test_output_dir_equals_bids_dir(dataset, capsys):
    code, err = _run(dataset, dataset, capsys)
    assert code == errors.EXIT_USAGE and "must differ" in err


def test_unknown_participant_lists_available(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--participant-label", "sub-07")
    _assert_clean_failure(code, err, errors.EXIT_USAGE, "07", out)
    assert "available: 01" in err


def test_runs_on_different_grids(dataset, tmp_path, capsys):
    path = dataset / f"{RUN1.replace('run-01', 'run-02')}_bold.nii.gz"
    img = nib.load(path)
    data = img.get_fdata(dtype="float32")[:-1]
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "run-02_bold.nii.gz", out)


def test_not_a_bids_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main([str(tmp_path / "empty"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == errors.EXIT_NO_INPUT and "dataset_description.json" in err


def test_bad_option_value_is_usage_error(dataset, tmp_path, capsys):
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--n-voxels", "0"])
    assert code == errors.EXIT_USAGE
    assert "--n-voxels" in capsys.readouterr().err
