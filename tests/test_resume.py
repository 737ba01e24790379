"""Atomic, resumable participant outputs: SIGKILL at several points, reruns, skip/--overwrite,
and several jobs writing into one output folder at once (a SLURM array).

Killed runs are subprocesses stopped with SIGKILL at a named point (``$BIDS_FACEDECODE_FAILPOINT``,
see :func:`bids_facedecode.bidsio.derivatives.failpoint`) or after a delay.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import app_args, write_truth_table

from bids_facedecode.bidsio.derivatives import FAILPOINT_ENV, dataset_description
from bids_facedecode.cli import main

ROOT = Path(__file__).resolve().parents[1]
SUB = "sub-01"
METRICS = f"{SUB}/{SUB}_task-faces_desc-truth_metrics.json"


@pytest.fixture(scope="module")
def truth(sim_tiny, tmp_path_factory) -> Path:
    return write_truth_table(sim_tiny, tmp_path_factory.mktemp("resume") / "truth.tsv")


def _args(bids: Path, out: Path, truth: Path, n_voxels: int, *extra: str) -> list[str]:
    return [str(bids), str(out), "participant", "--latent-space", "truth", "--latents", f"truth={truth}",
            "--n-voxels", str(n_voxels), "--nprocs", "1", "--skip-bids-validation",
            "-w", str(out.parent / f"{out.name}_work"), *extra]


def _spawn(args: list[str], failpoint: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    env.pop(FAILPOINT_ENV, None)
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.Popen([sys.executable, "-c", "from bids_facedecode.cli import run; run()", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _snapshot(out: Path, sub: str = SUB) -> dict[str, bytes]:
    """The participant's result files (its folder), by relative path."""
    folder = out / sub
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.is_dir() else {}


def _numbers(out: Path, sub: str = SUB) -> dict[str, object]:
    """What must be identical between two complete runs: tables and JSON byte for byte, maps by value."""
    found = {}
    for path in sorted((out / sub).rglob("*")):
        rel = str(path.relative_to(out))
        if path.suffix in (".tsv", ".json"):
            found[rel] = path.read_bytes()
        elif path.name.endswith(".nii.gz"):
            found[rel] = np.asarray(nib.load(path).dataobj)
    return found


def _assert_same_numbers(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], bytes):
            assert a[key] == b[key], key
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _no_staging_left(out: Path) -> None:
    state = out / ".bids_facedecode"
    assert not state.exists() or not [p for p in state.iterdir() if p.suffix != ".lock"]
    assert not [p for p in out.rglob(".*") if p.is_file() and p.name != ".bidsignore"]


@pytest.fixture(scope="module")
def references(sim_tiny, truth, tmp_path_factory) -> dict[int, Path]:
    """Complete outputs made in-process with 60 ("old") and 100 ("new") selected voxels."""
    base = tmp_path_factory.mktemp("refs")
    refs = {}
    for n in (60, 100):
        out = base / f"ref{n}"
        assert main(_args(sim_tiny, out, truth, n)) == 0
        refs[n] = out
    return refs


KILL_POINTS = ["analysed", "staged", "commit:ready", "commit:0", "commit:swapped"]


def test_sigkill_then_rerun(sim_tiny, truth, references, tmp_path):
    """Over old complete outputs (``--overwrite``) and into an empty folder: a run killed at any
    point leaves the old complete results or none (or, past the commit point, the new ones), and a
    rerun completes with results identical to an uninterrupted run."""
    old, new = _snapshot(references[60]), _numbers(references[100])
    jobs = {}
    for point in KILL_POINTS:
        over = tmp_path / f"over_{point.replace(':', '_')}"
        shutil.copytree(references[60], over)  # old complete outputs
        jobs[(point, "over")] = (over, _spawn(_args(sim_tiny, over, truth, 100, "--overwrite"), point))
    fresh = tmp_path / "fresh"
    jobs[("staged", "fresh")] = (fresh, _spawn(_args(sim_tiny, fresh, truth, 100), "staged"))
    delayed = tmp_path / "delayed"
    shutil.copytree(references[60], delayed)
    jobs[("delay", "over")] = (delayed, _spawn(_args(sim_tiny, delayed, truth, 100, "--overwrite")))
    time.sleep(4.0)
    jobs[("delay", "over")][1].send_signal(signal.SIGKILL)

    for (point, kind), (out, proc) in jobs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (-signal.SIGKILL, 0), (point, err)
        after = _snapshot(out)
        if kind == "fresh":
            assert after == {} and not (out / METRICS).exists(), point
        elif point in ("commit:swapped",) or (point == "delay" and proc.returncode == 0):
            _assert_same_numbers(_numbers(out), new)
        elif point == "delay":  # anywhere: old, none (mid-swap of the folder), or complete new
            if after not in (old, {}):
                _assert_same_numbers(_numbers(out), new)
        else:  # killed before the participant folder was swapped: the old set, untouched
            assert after == old, point
        # a rerun completes (rolling a committed set forward, or recomputing) and equals the reference
        args = _args(sim_tiny, out, truth, 100) + ([] if kind == "fresh" else ["--overwrite"])
        assert main(args) == 0, point
        _assert_same_numbers(_numbers(out), new)
        _no_staging_left(out)


def test_rerun_after_commit_point_rolls_forward_without_recomputing(sim_tiny, truth, references, tmp_path,
                                                                     capsys):
    out = tmp_path / "out"
    proc = _spawn(_args(sim_tiny, out, truth, 100), "commit:0")
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / METRICS).exists()  # the participant folder is not in place yet
    assert main(_args(sim_tiny, out, truth, 100)) == 0  # no --overwrite: finishes the commit, then skips
    assert "outputs complete, skipped" in capsys.readouterr().out
    _assert_same_numbers(_numbers(out), _numbers(references[100]))
    _no_staging_left(out)


def test_complete_participant_is_skipped_unless_overwrite(sim_tiny, truth, references, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(references[60], out)
    before = _snapshot(out)
    stamp = {p: p.stat().st_mtime_ns for p in (out / SUB).rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(_args(sim_tiny, out, truth, 60)) == 0  # the same analysis: skipped
    assert "sub-01: outputs complete, skipped" in capsys.readouterr().out
    # another analysis over complete outputs: refused before any work, nothing touched
    assert main(_args(sim_tiny, out, truth, 100)) == 64
    err = capsys.readouterr().err
    assert "complete outputs were made with other settings: sub-01 (n_voxels: 60 -> 100)" in err
    assert "--overwrite" in err and "Traceback" not in err
    assert main(_args(sim_tiny, out, truth, 60, "--seed", "7")) == 64
    assert "seed: 42 -> 7" in capsys.readouterr().err
    # resources and verbosity are not analysis settings
    assert main(_args(sim_tiny, out, truth, 60, "--mem", "1.5", "-v")) == 0
    assert "sub-01: outputs complete, skipped" in capsys.readouterr().out
    assert _snapshot(out) == before
    assert stamp == {p: p.stat().st_mtime_ns for p in (out / SUB).rglob("*") if p.is_file()}
    assert main(_args(sim_tiny, out, truth, 100, "--overwrite")) == 0
    _assert_same_numbers(_numbers(out), _numbers(references[100]))
    # a participant missing one requested space is not complete
    (out / METRICS).unlink()
    assert main(_args(sim_tiny, out, truth, 100)) == 0
    _assert_same_numbers(_numbers(out), _numbers(references[100]))


@pytest.mark.slow
def test_concurrent_participants_share_one_output_dir(app_run, app_dataset, small_pca, tmp_path):
    """Two participants at once (and sub-01 twice) into one output_dir, like a SLURM array."""
    out = tmp_path / "derivatives"
    procs = []
    for label in ("01", "02", "01"):
        args = app_args(app_dataset, out, small_pca, "participant", "--participant-label", label,
                        "--skip-bids-validation")
        args[args.index("-w") + 1] = str(tmp_path / f"work{len(procs)}")
        procs.append(_spawn(args))
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    # the second sub-01 job waited for the first one's lock, then found its outputs complete
    assert sum("outputs complete, skipped" in o for o, _ in outputs) == 1
    desc = json.loads((out / "dataset_description.json").read_text())
    expected = dataset_description(os.environ.get("BIDS_FACEDECODE_CONTAINER"))
    assert {k: v for k, v in desc.items() if k != "SourceDatasets"} == expected
    for sub in ("sub-01", "sub-02"):
        _assert_same_numbers(_numbers(out, sub), _numbers(app_run, sub))  # same as a sequential run
        assert (out / f"{sub}.html").is_file() and (out / "logs" / f"{sub}_config.json").is_file()
    _no_staging_left(out)
    assert main([str(app_dataset), str(out), "group"]) == 0


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and ".bids_facedecode" not in p.parts}


def _stage_new(out: Path, tag: str) -> Path:
    from bids_facedecode.bidsio import derivatives as deriv

    new = deriv.new_stage(out, "01")
    (new / SUB / "func").mkdir(parents=True)
    (new / SUB / "func" / "a.tsv").write_text(tag)
    (new / SUB / "m_metrics.json").write_text(tag)
    (new / f"{SUB}.html").write_text(tag)
    (new / "logs").mkdir()
    (new / "logs" / f"{SUB}_config.json").write_text(tag)
    return new


@pytest.mark.parametrize("crash", ["before_ready", "after_ready", "dir_moved_aside", "all_swapped"])
def test_commit_journal_states(tmp_path, crash):
    """Every state a crash can leave during a commit is recovered to all-old or all-new."""
    from bids_facedecode.bidsio import derivatives as deriv

    out = tmp_path / "out"
    _stage_new(out, "old")
    deriv.commit_stage(out, "01")
    old = _tree(out)
    assert set(old.values()) == {"old"} and len(old) == 4
    stage = deriv.stage_dir(out, "01")
    _stage_new(out, "new")
    if crash != "before_ready":
        (stage / "READY").write_text("complete\n")
    if crash in ("dir_moved_aside", "all_swapped"):
        for rel in deriv._stage_items(stage / "new", "01")[:-1]:  # files swapped, then the folder ...
            deriv._swap(stage, out, rel)
        (stage / "old").mkdir(exist_ok=True)
        (out / SUB).rename(stage / "old" / SUB)  # ... moved aside, killed before the new one moved in
        if crash == "all_swapped":
            (stage / "new" / SUB).rename(out / SUB)
    assert deriv.recover_participant(out, "01") == ("discarded" if crash == "before_ready" else "rolled forward")
    after = _tree(out)
    assert sorted(after) == sorted(old)
    assert set(after.values()) == ({"old"} if crash == "before_ready" else {"new"})
    assert not stage.exists() and deriv.recover_participant(out, "01") is None
