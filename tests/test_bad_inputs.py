"""Bad input: a one-line error naming the file, a documented exit code, no partial outputs.

Each test breaks a private copy of the tiny simulated dataset in one way and runs the whole
CLI in-process. Our own checks are tested with ``--skip-bids-validation`` (the BIDS validator
would catch several of these first, with exit code 16; that is tested too).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import write_truth_table

from bids_facedecode import errors
from bids_facedecode.bidsio.validation import find_validator
from bids_facedecode.cli import main

RUN1 = "sub-01/ses-01/func/sub-01_ses-01_task-faces_run-01"
RUN2 = RUN1.replace("run-01", "run-02")
PREP = "derivatives/fmriprep/" + RUN1.replace("/ses-01/func/", "/ses-01/func/")
SPACE = "MNI152NLin2009cAsym"


@pytest.fixture
def dataset(sim_tiny, tmp_path) -> Path:
    """A private copy of the tiny simulated dataset (with its fMRIPrep derivatives) to break."""
    dst = tmp_path / "bids"
    shutil.copytree(sim_tiny, dst)
    return dst


def _run(bids: Path, out: Path, capsys, *extra: str, validate: bool = False,
         table: Path | None = None) -> tuple[int, str]:
    args = [str(bids), str(out), "participant", "--latent-space", "truth", "--latents",
            f"truth={table or _truth_table(bids)}", "-w", str(out.parent / "work"), *extra]
    if not validate:
        args.append("--skip-bids-validation")
    code = main(args)
    return code, capsys.readouterr().err


def _truth_table(bids: Path) -> Path:
    path = bids.parent / "truth.tsv"
    if not path.exists():
        write_truth_table(bids, path)
    return path


def _output_files(out: Path) -> list[Path]:
    """Files in ``out`` other than the participants' lock files (bookkeeping, not outputs)."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.rglob("*")
                  if p.is_file() and not (p.parent.name == ".bids_facedecode" and p.suffix == ".lock"))


def _assert_clean_failure(code: int, err: str, expected_code: int, names: str, out: Path) -> None:
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line.startswith("bids_facedecode: error")]
    assert len(lines) == 1, err
    assert names in lines[0], lines[0]
    assert "Traceback" not in err
    assert not _output_files(out), _output_files(out)
    assert not out.is_dir() or not list(out.rglob("*.stage*"))


def _edit_events(path: Path, edit) -> None:
    events = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    edit(events)
    events.to_csv(path, sep="\t", index=False)


# --- events and stimuli ------------------------------------------------------------------------

def test_missing_events_file(dataset, tmp_path, capsys):
    (dataset / f"{RUN1}_events.tsv").unlink()
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, f"{RUN1.split('/')[-1]}_events.tsv", out)


def test_missing_stimulus(dataset, tmp_path, capsys):
    def edit(ev):
        ev.loc[ev.index[ev.trial_type == "train_face"][0], "stim_file"] = "sub01/run01/M9999_missing.jpg"
    _edit_events(dataset / f"{RUN1}_events.tsv", edit)
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "M9999_missing.jpg", out)
    assert "_events.tsv" in err


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


def test_events_without_stimulus_column(dataset, tmp_path, capsys):
    _edit_events(dataset / f"{RUN2}_events.tsv", lambda ev: ev.pop("stim_file"))
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, f"{RUN2.split('/')[-1]}_events.tsv", out)
    assert "stim_file" in err


def test_trial_after_end_of_run(dataset, tmp_path, capsys):
    def edit(ev):
        ev.loc[ev.index[-1], "onset"] = "9999"
    _edit_events(dataset / f"{RUN2}_events.tsv", edit)
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, f"{RUN2.split('/')[-1]}_events.tsv", out)
    assert "after the run ends" in err


def test_too_few_training_trials_for_latent_dimension(dataset, tmp_path, capsys):
    """A 400-D latent table and ~150 training images: the minimum (D + 1 images) is explained."""
    truth = pd.read_csv(_truth_table(dataset), sep="\t")
    rng = np.random.default_rng(0)
    big = pd.DataFrame(rng.normal(size=(len(truth), 400)), columns=[f"z{k + 1}" for k in range(400)])
    table = tmp_path / "big.tsv"
    pd.concat([truth[["sha1"]], big], axis=1).to_csv(table, sep="\t", index=False)
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, table=table)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "sub-01/ses-01/func", out)
    assert "at least 401" in err and "distinct training images" in err


# --- images ----------------------------------------------------------------------------------

def test_tr_differs_between_sidecar_and_header(dataset, tmp_path, capsys):
    sidecar = dataset / f"{RUN1}_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 2.5
    sidecar.write_text(json.dumps(meta))
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, f"{RUN1.split('/')[-1]}_bold.nii.gz", out)
    assert "RepetitionTime" in err


def test_runs_on_different_grids(dataset, tmp_path, capsys):
    path = dataset / f"{RUN2}_bold.nii.gz"
    img = nib.load(path)
    data = img.get_fdata(dtype="float32")[:-1]
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "run-02_bold.nii.gz", out)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_bold(dataset, tmp_path, capsys, bad):
    path = dataset / f"{RUN2}_bold.nii.gz"
    img = nib.load(path)
    data = img.get_fdata(dtype="float32")
    x, y, z = (s // 2 for s in data.shape[:3])
    data[x, y, z, 10] = bad  # the middle of the brain
    out_img = nib.Nifti1Image(data, img.affine, img.header)
    out_img.set_data_dtype(np.float32)
    out_img.header.set_slope_inter(1.0, 0.0)
    nib.save(out_img, path)
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "run-02_bold.nii.gz", out)
    assert "NaN/inf" in err


def test_truncated_bold(dataset, tmp_path, capsys):
    path = dataset / f"{RUN2}_bold.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_DATA, "run-02_bold.nii.gz", out)


# --- selection and options -------------------------------------------------------------------

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


def test_filter_file_missing(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--bids-filter-file", str(tmp_path / "nope.json"))
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, "nope.json", out)


def test_unknown_participant_lists_available(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--participant-label", "sub-07")
    _assert_clean_failure(code, err, errors.EXIT_USAGE, "07", out)
    assert "available: 01" in err


def test_unknown_session(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--session-label", "ses-09")
    _assert_clean_failure(code, err, errors.EXIT_USAGE, "sub-01", out)
    assert "09" in err and "available: 01" in err


def test_output_dir_inside_bids_dir(dataset, capsys):
    out = dataset / "results"
    code, err = _run(dataset, out, capsys)
    _assert_clean_failure(code, err, errors.EXIT_USAGE, str(out), out)


def test_output_dir_equals_bids_dir(dataset, capsys):
    code, err = _run(dataset, dataset, capsys)
    assert code == errors.EXIT_USAGE and "must differ" in err


def test_output_dir_cannot_be_created(dataset, tmp_path, capsys):
    out = tmp_path / "a_file"
    out.write_text("not a folder\n")
    code, err = _run(dataset, out, capsys)
    assert code == errors.EXIT_CANT_CREATE, err
    lines = [line for line in err.strip().splitlines() if line.startswith("bids_facedecode: error")]
    assert len(lines) == 1 and str(out) in lines[0], err
    assert out.read_text() == "not a folder\n"


def test_not_a_bids_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main([str(tmp_path / "empty"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == errors.EXIT_NO_INPUT and "dataset_description.json" in err
    assert not (tmp_path / "out").exists()


def test_bad_option_value_is_usage_error(dataset, tmp_path, capsys):
    code = main([str(dataset), str(tmp_path / "out"), "participant", "--n-voxels", "0"])
    assert code == errors.EXIT_USAGE
    assert "--n-voxels" in capsys.readouterr().err


# --- fMRIPrep derivatives --------------------------------------------------------------------

def test_derivatives_folder_missing(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--derivatives", str(tmp_path / "fmriprep"))
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, str(tmp_path / "fmriprep"), out)


def test_derivatives_without_confounds(dataset, tmp_path, capsys):
    conf = dataset / f"{PREP}_desc-confounds_timeseries.tsv"
    conf.unlink()
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--derivatives", str(dataset / "derivatives" / "fmriprep"))
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, conf.name, out)


def test_derivatives_without_brain_mask(dataset, tmp_path, capsys):
    (dataset / f"{PREP}_space-{SPACE}_desc-brain_mask.nii.gz").unlink()
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--derivatives", str(dataset / "derivatives" / "fmriprep"))
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, "desc-preproc_bold.nii.gz", out)
    assert "desc-brain_mask" in err


def test_derivatives_in_another_space(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--derivatives", str(dataset / "derivatives" / "fmriprep"),
                     "--space", "T1w")
    _assert_clean_failure(code, err, errors.EXIT_NO_FILES_SELECTED, "derivatives/fmriprep/sub-01", out)
    assert SPACE in err  # the spaces present are listed


def test_unknown_confounds_strategy(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--derivatives", str(dataset / "derivatives" / "fmriprep"),
                     "--confounds", "motion+aroma")
    _assert_clean_failure(code, err, errors.EXIT_USAGE, "--confounds", out)
    assert "aroma" in err


def test_confounds_without_derivatives(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--confounds", "motion")
    _assert_clean_failure(code, err, errors.EXIT_USAGE, "--confounds", out)


def test_confounds_table_with_wrong_length(dataset, tmp_path, capsys):
    conf = dataset / f"{PREP}_desc-confounds_timeseries.tsv"
    lines = conf.read_text().splitlines()
    conf.write_text("\n".join(lines[:-5]) + "\n")
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, "--derivatives", str(dataset / "derivatives" / "fmriprep"))
    _assert_clean_failure(code, err, errors.EXIT_DATA, conf.name, out)


# --- the BIDS validator ------------------------------------------------------------------------

needs_validator = pytest.mark.skipif(find_validator() is None, reason="bids-validator-deno not installed")


@needs_validator
def test_bids_validator_errors_exit_16(dataset, tmp_path, capsys):
    sidecar = dataset / f"{RUN1}_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 2.5
    sidecar.write_text(json.dumps(meta))
    out = tmp_path / "out"
    code, err = _run(dataset, out, capsys, validate=True)
    _assert_clean_failure(code, err, errors.EXIT_VALIDATION, f"{RUN1.split('/')[-1]}_bold", out)
    assert "REPETITION_TIME_MISMATCH" in err and "--skip-bids-validation" in err


def test_missing_validator_is_a_warning(dataset, tmp_path, capsys, monkeypatch, caplog):
    from bids_facedecode.bidsio import validation

    monkeypatch.setattr(validation, "find_validator", lambda: None)
    out = tmp_path / "out"
    _edit_events(dataset / f"{RUN1}_events.tsv", lambda ev: ev.pop("onset"))
    code, err = _run(dataset, out, capsys, validate=True)
    # the run went past validation (with a warning) to our own check of the events
    assert "bids-validator-deno not found" in caplog.text
    _assert_clean_failure(code, err, errors.EXIT_DATA, "_events.tsv", out)


# --- many participants: the last one's mistake fails before any work ---------------------------

def test_mistake_in_last_participant_fails_before_any_work(app_dataset, small_pca, tmp_path, capsys):
    bids = tmp_path / "bids"
    shutil.copytree(app_dataset, bids)
    last = sorted((bids / "sub-02").rglob("*_events.tsv"))[-1]
    last.unlink()
    out = tmp_path / "out"
    t0 = time.perf_counter()
    code = main([str(bids), str(out), "participant", "--latent-space", "pca", "--latent-model",
                 f"pca={small_pca}", "-w", str(tmp_path / "work"), "--skip-bids-validation"])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    _assert_clean_failure(code, err, errors.EXIT_NO_INPUT, last.name, out)
    assert not (tmp_path / "work").exists() or not list((tmp_path / "work").rglob("*.npy"))  # no BOLD read
    assert elapsed < 30
