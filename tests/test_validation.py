"""Validation before work: the BIDS validator (on inputs and on our own outputs), trial counts,
all participants checked before the first is analysed."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import write_truth_table

from bids_facedecode.bidsio import validation
from bids_facedecode.cli import main
from bids_facedecode.errors import DataError, NoInputError, ValidationError
from bids_facedecode.workflow import checks

needs_validator = pytest.mark.skipif(validation.find_validator() is None,
                                     reason="bids-validator-deno not installed")


@pytest.fixture(scope="module")
def outputs(sim_tiny, tmp_path_factory) -> dict[str, Path]:
    """Our derivatives from raw BOLD and from the fMRIPrep derivatives."""
    base = tmp_path_factory.mktemp("validation")
    table = write_truth_table(sim_tiny, base / "truth.tsv")
    outs = {}
    for name, extra in (("raw", []), ("fmriprep", ["--derivatives", str(sim_tiny / "derivatives" / "fmriprep")])):
        out = base / name
        assert main([str(sim_tiny), str(out), "participant", "--latent-space", "truth", "--latents",
                     f"truth={table}", "--n-voxels", "100", "-w", str(base / "work"), *extra]) == 0
        outs[name] = out
    return outs


@needs_validator
@pytest.mark.parametrize("kind", ["raw", "fmriprep"])
def test_our_derivatives_pass_the_bids_validator(outputs, kind):
    issues = validation.validator_issues(outputs[kind])
    errors = [i for i in issues if i["severity"] == "error"]
    assert not errors, errors
    # the validator did look at our files (it warns about recommended sidecar keys of our maps)
    assert any("sub-01" in str(i.get("location", "")) for i in issues)


@needs_validator
def test_simulated_input_passes(sim_tiny):
    issues = validation.validate_bids(sim_tiny)
    assert all(i["severity"] != "error" for i in issues)


def test_validator_errors_name_the_first_file(monkeypatch, tmp_path):
    fake = [{"code": "WARN_ONLY", "severity": "warning", "location": "/README"},
            {"code": "EVENTS_TSV_MISSING", "severity": "error", "location": "/sub-01/func/x_bold.nii.gz",
             "issueMessage": "Task scans should have\n a corresponding events.tsv"},
            {"code": "OTHER", "severity": "error", "location": "/sub-02"}]
    monkeypatch.setattr(validation, "validator_issues", lambda d: fake)
    with pytest.raises(ValidationError) as exc:
        validation.validate_bids(tmp_path)
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path}/sub-01/func/x_bold.nii.gz: BIDS validator error EVENTS_TSV_MISSING")
    assert "and 1 more error(s)" in msg and "\n" not in msg and exc.value.exit_code == 16


def test_missing_validator_warns(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(validation, "find_validator", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert validation.validate_bids(tmp_path) == []
    assert "bids-validator-deno not found" in caplog.text


def _inputs(n_unique: int, n_trials: int, n_test: int = 2, n_img: int = 0, n_scans: int = 10_000):
    return SimpleNamespace(
        subject="01", runs=[SimpleNamespace(events=Path("/data/sub-01/func/x_events.tsv"))],
        train_ids=[f"s{i}" for i in range(n_unique)],
        train_trial_ids=[f"s{i % n_unique}" for i in range(n_trials)],
        test_ids=[f"t{i}" for i in range(n_test)], imagery_ids=[f"t{i}" for i in range(n_img)],
        nuisance_kinds=["oneback"], n_scans=n_scans)


def test_enough_trials_boundary():
    """D + 1 distinct training images is the minimum for D latent dimensions (summed over spaces)."""
    checks.check_enough_trials(_inputs(n_unique=11, n_trials=40), [6, 4])
    with pytest.raises(DataError, match=r"/data/sub-01/func: .* 10 distinct training images .* at least 11"):
        checks.check_enough_trials(_inputs(n_unique=10, n_trials=40), [6, 4])
    # trials: more than max(D) + 1 + n_test + n_imagery
    with pytest.raises(DataError, match="more than 10"):
        checks.check_enough_trials(_inputs(n_unique=10, n_trials=10, n_test=2, n_img=1), [6])
    checks.check_enough_trials(_inputs(n_unique=10, n_trials=11, n_test=2, n_img=1), [6])
    with pytest.raises(DataError, match="volumes"):
        checks.check_enough_trials(_inputs(n_unique=11, n_trials=40, n_scans=12), [6, 4])


def test_no_training_trials_pass_only_when_every_space_has_a_saved_decoder():
    none = _inputs(n_unique=0, n_trials=0)
    checks.check_enough_trials(none, [6, 4], to_fit=())  # both spaces re-use a decoder
    with pytest.raises(DataError, match=r"/data/sub-01/func: sub-01 has no training trials, so the "
                                        r"brain-to-latent map of vaegan cannot be fitted"):
        checks.check_enough_trials(none, [6, 4], to_fit=["vaegan"])
    # too few training trials for the latent block: fine when every space re-uses a decoder
    # (they are then modelled by the face regressor alone), an error naming the way out otherwise
    few = _inputs(n_unique=3, n_trials=40)
    checks.check_enough_trials(few, [6], to_fit=())
    assert "3 distinct training images" in checks.trial_shortfall(few, [6])
    with pytest.raises(DataError, match=r"3 distinct training images .* --decoder-from\)"):
        checks.check_enough_trials(few, [6], to_fit=["pca"])
    assert checks.trial_shortfall(_inputs(n_unique=11, n_trials=40), [6, 4]) is None


def test_all_participants_checked_before_any_is_analysed(caplog):
    seen = []

    def collect(subject):
        seen.append(subject)
        if subject in ("02", "03"):
            raise NoInputError(f"/data/sub-{subject}/func/x_events.tsv: events file not found")
        return _inputs(50, 100)

    def check(subject):
        inputs = collect(subject)
        checks.check_enough_trials(inputs, [8])
        return inputs

    with caplog.at_level(logging.ERROR), pytest.raises(NoInputError, match="sub-02"):
        checks.check_all(["01", "02", "03"], check)
    assert seen == ["01", "02", "03"]
    assert "sub-03" in caplog.text and "2 of 3 participants failed validation" in caplog.text
    found = checks.check_all(["01"], check)
    assert list(found) == ["01"]


def test_bidsignore_keeps_user_lines(tmp_path):
    from bids_facedecode.bidsio.derivatives import BIDSIGNORE, ensure_bidsignore

    path = ensure_bidsignore(tmp_path)
    assert path.read_text() == BIDSIGNORE
    path.write_text("my_notes/\n*_decoding.tsv\n")
    ensure_bidsignore(tmp_path)
    text = path.read_text()
    assert text.startswith("my_notes/\n*_decoding.tsv\n")
    assert all(line in text.splitlines() for line in BIDSIGNORE.splitlines())
    assert text.count("*_decoding.tsv") == 1
    before = path.stat().st_mtime_ns
    ensure_bidsignore(tmp_path)
    assert path.stat().st_mtime_ns == before and path.read_text() == text


# --- the validator runs in the background while the dataset is indexed -------------------------

def _fake_validator(tmp_path: Path, body: str) -> str:
    """An executable standing in for bids-validator-deno (``$2`` is the directory)."""
    exe = tmp_path / "fake-validator"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return str(exe)


def test_background_validator_report_and_failures(monkeypatch, tmp_path):
    ok = _fake_validator(tmp_path, 'echo \'{"issues": {"issues": [{"code": "W", "severity": "warning"}]}}\'')
    monkeypatch.setattr(validation, "find_validator", lambda: ok)
    with validation.start_validator(tmp_path) as run:
        assert run.issues() == [{"code": "W", "severity": "warning"}]
    assert validation.validator_issues(tmp_path) == [{"code": "W", "severity": "warning"}]

    broken = _fake_validator(tmp_path, 'echo "deno: cannot read $2" >&2; exit 3')
    monkeypatch.setattr(validation, "find_validator", lambda: broken)
    with pytest.raises(ValidationError, match=r"validator failed \(exit 3: deno: cannot read") as exc:
        validation.validate_bids(tmp_path, validation.start_validator(tmp_path))
    assert str(tmp_path) in str(exc.value)

    slow = _fake_validator(tmp_path, "sleep 30")
    monkeypatch.setattr(validation, "find_validator", lambda: slow)
    run = validation.start_validator(tmp_path)
    with pytest.raises(ValidationError, match="did not run"):
        run.issues(timeout=0.2)
    assert run._proc.returncode is not None  # killed and reaped


def test_background_validator_finishes_a_large_report_unread(monkeypatch, tmp_path):
    """A report larger than a pipe's buffer (thousands of warnings) does not stall the
    validator until it is read: it finishes in the background."""
    import time

    big = _fake_validator(tmp_path, "python3 -c \"import json; print(json.dumps({'issues': {'issues': "
                          "[{'code': 'W%d' % i, 'severity': 'warning'} for i in range(20000)]}}))\"")
    monkeypatch.setattr(validation, "find_validator", lambda: big)
    with validation.start_validator(tmp_path) as run:
        for _ in range(200):
            if run._proc.poll() is not None:
                break
            time.sleep(0.05)
        assert run._proc.poll() == 0  # done before anyone read its ~600 kB report
        issues = run.issues()
    assert len(issues) == 20000 and issues[-1] == {"code": "W19999", "severity": "warning"}


def test_a_failed_index_stops_the_background_validator(monkeypatch, tmp_path, capsys):
    """The validator is started before the dataset is indexed; an error in between (here: no
    dataset_description.json) kills it instead of leaving it running or waiting for it."""
    import time

    from bids_facedecode import participant

    slow = _fake_validator(tmp_path, "sleep 30")  # sh and its child sleep: a process group
    monkeypatch.setattr(validation, "find_validator", lambda: slow)
    started = []

    def start(directory):
        started.append(validation.start_validator(directory))
        return started[-1]

    monkeypatch.setattr(participant, "start_validator", start)
    bids = tmp_path / "bids"
    bids.mkdir()
    t0 = time.perf_counter()
    code = main([str(bids), str(tmp_path / "out"), "participant"])
    assert code == NoInputError.exit_code and time.perf_counter() - t0 < 20
    assert "dataset_description.json" in capsys.readouterr().err
    assert len(started) == 1 and started[0]._proc.returncode == -9  # killed and reaped
