"""SLURM script generation: labels, resources, GPU switches, and the scripts actually running.

The generated submission script is executed with fake ``sbatch`` and ``apptainer`` programs
on PATH that record what they receive, so the tests check behaviour (which job scripts are
submitted with which dependency, which container command each array task runs), not only text.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bids_facedecode.errors import (
    EXIT_NO_FILES_SELECTED,
    EXIT_NO_INPUT,
    NoFilesSelectedError,
    NoInputError,
    UsageError,
)
from bids_facedecode.hpc import discover_labels, make_slurm_script
from bids_facedecode.hpc.cli import main
from bids_facedecode.hpc.slurm import normalize_label, select_labels

REPO = Path(__file__).resolve().parents[1]

FAKE_SBATCH = """#!/bin/bash
# Record the job script (stdin) and the options, answer like `sbatch --parsable` on a cluster.
n=$(ls "$CAPTURE"/job_*.sh 2>/dev/null | wc -l)
cat > "$CAPTURE/job_$n.sh"
printf '%s\\n' "$@" > "$CAPTURE/job_$n.args"
echo "$((1000 + n));cluster1"
"""

FAKE_RUNTIME = """#!/bin/bash
printf '%s\\n' "$@" > "$CAPTURE/run_${SLURM_ARRAY_TASK_ID:-group}.args"
"""


@pytest.fixture
def bids_dir(tmp_path: Path) -> Path:
    root = tmp_path / "bids data"  # a space, to check the quoting
    for name in ("sub-03", "sub-01", "sub-02"):
        (root / name / "func").mkdir(parents=True)
    (root / "sub-bad_label").mkdir()  # not a BIDS label: ignored
    (root / "sub-04.txt").write_text("not a folder")
    (root / "derivatives").mkdir()
    (root / "dataset_description.json").write_text("{}")
    return root


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("apptainer", FAKE_RUNTIME)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _bash(script: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    args = ["bash", str(script)] if isinstance(script, Path) else ["bash", "-c", script]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=30)


def _submit(script: str, tmp_path: Path, fake_bin: Path) -> tuple[Path, dict[str, str]]:
    """Run the submission script with the fakes; return the capture folder and the env."""
    capture = tmp_path / "capture"
    capture.mkdir()
    env = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "CAPTURE": str(capture),
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path / "nodetmp"),
    }
    path = tmp_path / "submit.sh"
    path.write_text(script)
    proc = _bash(path, env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "submitted participant array 1000" in proc.stdout
    assert "group job 1001" in proc.stdout
    return capture, env


def _directives(job_script: str) -> dict[str, str]:
    found = {}
    for line in job_script.splitlines():
        m = re.match(r"#SBATCH --([a-z-]+)(?:=(.*))?$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def _participant_directives(script: str) -> dict[str, str]:
    """Directives of the participant job inlined in a submission script."""
    return _directives(script.split("<<'FACEDECODE_GROUP'")[0])


def _run_task(
    capture: Path, env: dict[str, str], job: str, task: int | None, cwd: Path
) -> list[str]:
    task_env = dict(env, SLURM_JOB_ID="2000")
    if task is not None:
        task_env.update(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID="1000")
    proc = _bash(capture / job, task_env, cwd)
    assert proc.returncode == 0, proc.stderr
    name = f"run_{task}.args" if task is not None else "run_group.args"
    return (capture / name).read_text().splitlines()


# --------------------------------------------------------------------------- labels


def test_discover_labels_reads_sub_folders_only(bids_dir: Path) -> None:
    assert discover_labels(bids_dir) == ["01", "02", "03"]


def test_discover_labels_errors(tmp_path: Path) -> None:
    with pytest.raises(NoInputError, match="no such folder"):
        discover_labels(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoFilesSelectedError, match="no sub-<label>"):
        discover_labels(tmp_path / "empty")


def test_given_labels_are_normalised_deduplicated_and_checked(bids_dir: Path) -> None:
    assert select_labels(bids_dir, ["sub-02", "01", "02"]) == ["02", "01"]
    with pytest.raises(NoFilesSelectedError, match="sub-07"):
        select_labels(bids_dir, ["01", "07"])
    with pytest.raises(UsageError, match="not a BIDS label"):
        normalize_label("sub-0_1")
    # A folder this machine cannot see is not checked (scripts may be written elsewhere).
    assert select_labels("/cluster/only/path", ["5", "sub-6"]) == ["5", "6"]


# --------------------------------------------------------------------------- scripts


def test_script_is_valid_bash(bids_dir: Path, tmp_path: Path) -> None:
    script = make_slurm_script(
        bids_dir, tmp_path / "out", "app.sif", gpus=2, extra_args=["--x", "a b"]
    )
    path = tmp_path / "s.sh"
    path.write_text(script)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cpu_array_job_end_to_end(bids_dir: Path, tmp_path: Path, fake_bin: Path) -> None:
    out = tmp_path / "out dir"
    script = make_slurm_script(
        bids_dir, out, tmp_path / "img.sif", nprocs=6, mem_gb=24, time="2-00:00:00"
    )
    capture, env = _submit(script, tmp_path, fake_bin)

    assert sorted(p.name for p in capture.glob("job_*.sh")) == ["job_0.sh", "job_1.sh"]
    assert (out / "logs" / "slurm").is_dir()  # sbatch needs the log folder to exist
    part = (capture / "job_0.sh").read_text()
    group = (capture / "job_1.sh").read_text()
    d = _directives(part)
    assert d["array"] == "0-2"
    assert d["cpus-per-task"] == "6"
    assert d["mem"] == "24G"
    assert d["time"] == "2-00:00:00"
    assert "gres" not in d and "partition" not in d
    assert d["output"].startswith(str(out / "logs" / "slurm"))
    assert (capture / "job_0.args").read_text().split() == ["--parsable"]
    # The group job waits for the whole array (cluster suffix of --parsable stripped).
    assert (capture / "job_1.args").read_text().split() == [
        "--parsable",
        "--dependency=afterok:1000",
    ]
    assert "array" not in _directives(group)
    for job_text in (part, group):
        assert subprocess.run(["bash", "-n"], input=job_text, text=True).returncode == 0

    for task, label in enumerate(["01", "02", "03"]):
        args = _run_task(capture, env, "job_0.sh", task, tmp_path)
        assert args[:2] == ["run", "--cleanenv"]
        assert "--nv" not in args
        assert f"{bids_dir}:/data:ro" in args  # one argument despite the space
        assert f"{out}:/out" in args
        work = args[args.index(f"{tmp_path / 'img.sif'}") - 1]
        assert work == f"{tmp_path / 'nodetmp'}/facedecode_1000_{task}:/work"
        app = args[args.index(str(tmp_path / "img.sif")) + 1 :]
        assert app[:3] == ["/data", "/out", "participant"]
        assert app[app.index("--participant-label") + 1] == label
        assert app[app.index("--nprocs") + 1] == "6"
        assert app[app.index("--mem") + 1] == "24"
        assert app[app.index("--device") + 1] == "cpu"

    args = _run_task(capture, env, "job_1.sh", None, tmp_path)
    app = args[args.index(str(tmp_path / "img.sif")) + 1 :]
    assert app[:3] == ["/data", "/out", "group"]
    assert "--nv" not in args


def test_gpu_job_requests_gres_and_nv(bids_dir: Path, tmp_path: Path, fake_bin: Path) -> None:
    script = make_slurm_script(
        bids_dir,
        tmp_path / "out",
        "docker://bids/facedecode:0.1.0",
        ["02"],
        gpus=2,
        partition="gpu",
        account="lab-1",
        extra_args=["--latent", "vaegan"],
    )
    capture, env = _submit(script, tmp_path, fake_bin)
    d = _directives((capture / "job_0.sh").read_text())
    assert d["array"] == "0-0"
    assert d["gres"] == "gpu:2"
    assert d["partition"] == "gpu" and d["account"] == "lab-1"
    assert "gres" not in _directives((capture / "job_1.sh").read_text())

    args = _run_task(capture, env, "job_0.sh", 0, tmp_path)
    assert "--nv" in args
    image = args.index("docker://bids/facedecode:0.1.0")  # URIs are used as given
    app = args[image + 1 :]
    assert app[app.index("--participant-label") + 1] == "02"
    assert app[app.index("--device") + 1] == "cuda"
    assert app[-2:] == ["--latent", "vaegan"]
    group_args = _run_task(capture, env, "job_1.sh", None, tmp_path)
    assert "--nv" not in group_args


def test_user_device_option_wins(bids_dir: Path, tmp_path: Path) -> None:
    script = make_slurm_script(bids_dir, tmp_path, "a.sif", gpus=1, extra_args=["--device", "auto"])
    assert script.count("--device") == 1
    assert "--device auto" in script


def test_array_limit_mem_rounding_and_work_dir(bids_dir: Path, tmp_path: Path) -> None:
    script = make_slurm_script(
        bids_dir, tmp_path / "o", "a.sif", mem_gb=7.5, array_limit=2, work_dir=tmp_path / "scratch"
    )
    d = _participant_directives(script)
    assert d["array"] == "0-2%2"
    assert d["mem"] == "7680M"
    assert "--mem 7.5" in script
    assert f"WORK={tmp_path / 'scratch'}/facedecode_" in script


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nprocs": 0}, "--nprocs"),
        ({"mem_gb": 0}, "--mem"),
        ({"gpus": -1}, "--gpus"),
        ({"time": "90"}, "--time"),
        ({"time": "1:00"}, "--time"),
        ({"group_time": "x"}, "--group-time"),
        ({"partition": "gpu; rm -rf /"}, "--partition"),
        ({"job_name": "a b"}, "--job-name"),
        ({"array_limit": 0}, "--array-limit"),
    ],
)
def test_bad_options_raise_usage_error(
    bids_dir: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        make_slurm_script(bids_dir, tmp_path, "a.sif", **kwargs)


# --------------------------------------------------------------------------- command line


def test_cli_writes_executable_script(bids_dir: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "submit.sh"
    rc = main(
        [
            str(bids_dir),
            str(tmp_path / "out"),
            "--image",
            "x.sif",
            "--participant-label",
            "sub-01",
            "03",
            "--nprocs",
            "3",
            "--mem",
            "12",
            "--gpus",
            "1",
            "--time",
            "10:00:00",
            "--partition",
            "p100",
            "-o",
            str(target),
            "--",
            "--latent",
            "pca",
        ]
    )
    assert rc == 0
    assert os.access(target, os.X_OK)
    text = target.read_text()
    d = _participant_directives(text)
    assert (d["array"], d["cpus-per-task"], d["mem"], d["gres"], d["time"], d["partition"]) == (
        "0-1",
        "3",
        "12G",
        "gpu:1",
        "10:00:00",
        "p100",
    )
    assert "LABELS=(01 03)" in text
    assert "--latent pca" in text
    assert "submit with: bash" in capsys.readouterr().err


def test_cli_stdout_and_exit_codes(bids_dir: Path, tmp_path: Path, capsys) -> None:
    assert main([str(bids_dir), str(tmp_path / "o"), "--image", "x.sif"]) == 0
    assert "LABELS=(01 02 03)" in capsys.readouterr().out
    assert main([str(tmp_path / "nope"), str(tmp_path / "o"), "--image", "x.sif"]) == EXIT_NO_INPUT
    err = capsys.readouterr().err
    assert "no such folder" in err and err.count("\n") == 1
    assert main(
        [str(bids_dir), str(tmp_path / "o"), "--image", "x.sif", "--participant-label", "9"]
    ) == (EXIT_NO_FILES_SELECTED)
    with pytest.raises(SystemExit):  # argparse rejects a negative GPU count
        main([str(bids_dir), str(tmp_path / "o"), "--image", "x.sif", "--gpus", "-1"])


def test_console_script_is_declared() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["bids_facedecode-slurm"] == "bids_facedecode.hpc.cli:run"
    proc = subprocess.run(
        [sys.executable, "-m", "bids_facedecode.hpc.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0 and "--image" in proc.stdout


def test_documented_commands_parse() -> None:
    """Every `bids_facedecode-slurm` example in docs/hpc.md is accepted by the parser."""
    from bids_facedecode.hpc.cli import build_parser

    text = (REPO / "docs" / "hpc.md").read_text().replace("\\\n", " ")
    commands = [
        ln.strip() for ln in text.splitlines() if ln.strip().startswith("bids_facedecode-slurm /")
    ]
    assert len(commands) >= 2
    for command in commands:
        argv = shlex.split(command)[1:]
        argv = argv[: argv.index("--")] if "--" in argv else argv
        args = build_parser().parse_args(argv)
        assert args.image.endswith(".sif")
