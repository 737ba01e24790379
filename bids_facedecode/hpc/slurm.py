"""SLURM submission scripts that run the container as a BIDS-App map/reduce.

The map step is one participant per task of a SLURM job array; the reduce step is one group
job that starts only when every participant task succeeded (``--dependency=afterok``). The
generated file is a plain bash script for the login node: running it submits both jobs with
``sbatch`` (their job scripts are inlined as here-documents) and prints the two job ids.
Inside the jobs the image runs with Apptainer or Singularity (whichever is installed),
``--cleanenv``, bind mounts for the input (read-only), the output and a work folder, and
``--nv`` plus ``--device cuda`` only when GPUs are requested.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from bids_facedecode.errors import NoFilesSelectedError, NoInputError, UsageError

_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_TIME = re.compile(r"^(?:\d+-)?\d{1,3}:[0-5]\d:[0-5]\d$")
_SBATCH_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_URI_IMAGE = re.compile(r"^[a-z][a-z0-9+.-]*://")

# Mount points inside the container.
DATA_MOUNT = "/data"
OUT_MOUNT = "/out"
WORK_MOUNT = "/work"


def normalize_label(label: str) -> str:
    """Return a participant label without its ``sub-`` prefix, checked against BIDS.

    Parameters
    ----------
    label : str
        ``"01"`` or ``"sub-01"``.

    Returns
    -------
    str
        The bare label (alphanumeric).

    Raises
    ------
    UsageError
        If the label is empty or not alphanumeric.
    """
    bare = label.strip()
    bare = bare[4:] if bare.startswith("sub-") else bare
    if not _LABEL.match(bare):
        raise UsageError(
            f"--participant-label: {label!r} is not a BIDS label (letters and digits only)"
        )
    return bare


def discover_labels(bids_dir: str | os.PathLike) -> list[str]:
    """List the participant labels of a BIDS dataset from its ``sub-*`` folders.

    Parameters
    ----------
    bids_dir : path
        Root of the BIDS dataset.

    Returns
    -------
    list of str
        Bare labels, sorted.

    Raises
    ------
    NoInputError
        If ``bids_dir`` is not a folder.
    NoFilesSelectedError
        If it holds no ``sub-<label>`` folder.
    """
    root = Path(bids_dir)
    if not root.is_dir():
        raise NoInputError(f"bids_dir {root}: no such folder")
    labels = sorted(
        p.name[4:]
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("sub-") and _LABEL.match(p.name[4:])
    )
    if not labels:
        raise NoFilesSelectedError(f"bids_dir {root}: no sub-<label> folder found")
    return labels


def select_labels(
    bids_dir: str | os.PathLike, participant_labels: Sequence[str] | None
) -> list[str]:
    """Labels to run: the given ones (checked, deduplicated, in order) or all in ``bids_dir``.

    Given labels are checked against ``bids_dir`` only when that folder exists here (the
    script may be written on a machine that does not see the cluster's file system).

    Raises
    ------
    UsageError
        If a label is malformed.
    NoFilesSelectedError
        If a given label has no folder in an existing ``bids_dir``.
    """
    if not participant_labels:
        return discover_labels(bids_dir)
    labels = list(dict.fromkeys(normalize_label(lab) for lab in participant_labels))
    root = Path(bids_dir)
    if root.is_dir():
        missing = [lab for lab in labels if not (root / f"sub-{lab}").is_dir()]
        if missing:
            raise NoFilesSelectedError(
                f"bids_dir {root}: no folder for participant(s) "
                + ", ".join(f"sub-{lab}" for lab in missing)
            )
    return labels


def _check_options(
    nprocs: int, mem_gb: float, gpus: int, time: str, group_time: str, array_limit: int | None
) -> None:
    if nprocs < 1:
        raise UsageError(f"--nprocs must be at least 1, got {nprocs}")
    if not mem_gb > 0:
        raise UsageError(f"--mem must be a positive number of GB, got {mem_gb}")
    if gpus < 0:
        raise UsageError(f"--gpus must be 0 or more, got {gpus}")
    for name, value in (("--time", time), ("--group-time", group_time)):
        if not _TIME.match(value):
            raise UsageError(f"{name} must be HH:MM:SS or D-HH:MM:SS, got {value!r}")
    if array_limit is not None and array_limit < 1:
        raise UsageError(f"--array-limit must be at least 1, got {array_limit}")


def _mem_option(mem_gb: float) -> str:
    """SLURM ``--mem`` value: whole GB when possible, else MB (SLURM takes integers)."""
    if float(mem_gb).is_integer():
        return f"{int(mem_gb)}G"
    return f"{int(round(mem_gb * 1024))}M"


def _app_mem(mem_gb: float) -> str:
    return str(int(mem_gb)) if float(mem_gb).is_integer() else f"{mem_gb:g}"


def _image_path(image: str | os.PathLike) -> str:
    text = os.fspath(image)
    if _URI_IMAGE.match(text):  # docker://, oras://, library:// ... used as given
        return text
    return os.path.abspath(text)


def _sbatch_header(directives: list[tuple[str, str | None]]) -> list[str]:
    return [
        f"#SBATCH --{key}" if value is None else f"#SBATCH --{key}={value}"
        for key, value in directives
    ]


def make_slurm_script(
    bids_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    image: str | os.PathLike,
    participant_labels: Sequence[str] | None = None,
    *,
    nprocs: int = 4,
    mem_gb: float = 16,
    gpus: int = 0,
    time: str = "24:00:00",
    partition: str | None = None,
    account: str | None = None,
    group_nprocs: int = 1,
    group_mem_gb: float = 4,
    group_time: str = "01:00:00",
    work_dir: str | os.PathLike | None = None,
    log_dir: str | os.PathLike | None = None,
    array_limit: int | None = None,
    job_name: str = "facedecode",
    extra_args: Sequence[str] = (),
) -> str:
    """Write a bash script that submits the participant job array and the dependent group job.

    Parameters
    ----------
    bids_dir, output_dir : path
        The BIDS dataset and the derivatives folder, as seen from the compute nodes (made
        absolute; they are bound into the container at ``/data`` (read-only) and ``/out``).
    image : path or str
        The Singularity/Apptainer image (``.sif``), or a URI such as ``docker://...``.
    participant_labels : sequence of str, optional
        Labels (with or without ``sub-``); default: every ``sub-*`` folder in ``bids_dir``.
    nprocs, mem_gb : int, float
        Per participant: ``--cpus-per-task`` and ``--mem``; also passed to the app as
        ``--nprocs`` and ``--mem``.
    gpus : int
        GPUs per participant task. When above 0: ``--gres=gpu:<gpus>``, ``--nv`` and
        ``--device cuda``; otherwise none of these and ``--device cpu``.
    time, group_time : str
        Wall-time limits (``HH:MM:SS`` or ``D-HH:MM:SS``) of a participant task and the group job.
    partition, account : str, optional
        ``--partition`` / ``--account`` for both jobs.
    group_nprocs, group_mem_gb : int, float
        Resources of the group job (it reads only the derivatives).
    work_dir : path, optional
        Parent of the per-task work folders; default ``$SLURM_TMPDIR`` or ``$TMPDIR`` or ``/tmp``
        on the node, resolved when the task runs.
    log_dir : path, optional
        Where SLURM writes the jobs' stdout/stderr; default ``<output_dir>/logs/slurm``.
    array_limit : int, optional
        Run at most this many participant tasks at once (``--array=0-N%limit``).
    job_name : str
        Prefix of the job names (``<job_name>-participant`` / ``-group``).
    extra_args : sequence of str
        More arguments for the app at the participant level (e.g. ``["--latent", "pca"]``).

    Returns
    -------
    str
        The script text; run it with ``bash`` on the login node.

    Raises
    ------
    UsageError
        Bad option values or labels.
    NoInputError, NoFilesSelectedError
        No labels given and ``bids_dir`` is missing or has no participants.
    """
    _check_options(nprocs, mem_gb, gpus, time, group_time, array_limit)
    if group_nprocs < 1 or not group_mem_gb > 0:
        raise UsageError("group job: --group-nprocs must be >= 1 and --group-mem > 0")
    if not _SBATCH_NAME.match(job_name):
        raise UsageError(f"--job-name {job_name!r}: use letters, digits, '.', '_' or '-'")
    for name, value in (("--partition", partition), ("--account", account)):
        if value is not None and not _SBATCH_NAME.match(value):
            raise UsageError(f"{name} {value!r}: use letters, digits, '.', '_' or '-'")
    labels = select_labels(bids_dir, participant_labels)
    extra = list(extra_args)

    bids_abs = os.path.abspath(os.fspath(bids_dir))
    out_abs = os.path.abspath(os.fspath(output_dir))
    logs_abs = (
        os.path.abspath(os.fspath(log_dir)) if log_dir else os.path.join(out_abs, "logs", "slurm")
    )
    sif = _image_path(image)
    q = shlex.quote

    common: list[tuple[str, str | None]] = []
    if partition:
        common.append(("partition", partition))
    if account:
        common.append(("account", account))

    array = f"0-{len(labels) - 1}" + (f"%{array_limit}" if array_limit else "")
    part_directives: list[tuple[str, str | None]] = [
        ("job-name", f"{job_name}-participant"),
        ("array", array),
        ("nodes", "1"),
        ("ntasks", "1"),
        ("cpus-per-task", str(nprocs)),
        ("mem", _mem_option(mem_gb)),
        ("time", time),
        *common,
        ("output", f"{logs_abs}/%x_%A_%a.log"),
    ]
    if gpus > 0:
        part_directives.append(("gres", f"gpu:{gpus}"))

    group_directives: list[tuple[str, str | None]] = [
        ("job-name", f"{job_name}-group"),
        ("nodes", "1"),
        ("ntasks", "1"),
        ("cpus-per-task", str(group_nprocs)),
        ("mem", _mem_option(group_mem_gb)),
        ("time", group_time),
        *common,
        ("output", f"{logs_abs}/%x_%j.log"),
    ]

    nv = " --nv" if gpus > 0 else ""
    device = (
        []
        if any(a == "--device" or a.startswith("--device=") for a in extra)
        else ["--device", "cuda" if gpus > 0 else "cpu"]
    )
    work_parent = (
        q(os.path.abspath(os.fspath(work_dir)))
        if work_dir
        else '"${SLURM_TMPDIR:-${TMPDIR:-/tmp}}"'
    )
    participant_app = " ".join(
        q(a)
        for a in [
            "--nprocs",
            str(nprocs),
            "--mem",
            _app_mem(mem_gb),
            *device,
            "-w",
            WORK_MOUNT,
            *extra,
        ]
    )
    group_app = " ".join(q(a) for a in ["--nprocs", str(group_nprocs), "-w", WORK_MOUNT])

    runtime_lines = [
        "# Apptainer or Singularity, whichever this node has.",
        "RUNTIME=$(command -v apptainer || command -v singularity || true)",
        'if [ -z "$RUNTIME" ]; then echo "neither apptainer nor singularity is on PATH" >&2; exit 69; fi',
    ]

    participant_job = [
        "#!/bin/bash",
        *_sbatch_header(part_directives),
        "set -euo pipefail",
        f"LABELS=({' '.join(q(lab) for lab in labels)})",
        "LABEL=${LABELS[$SLURM_ARRAY_TASK_ID]}",
        *runtime_lines,
        f"WORK={work_parent}/{job_name}_${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}",
        'mkdir -p "$WORK"',
        'echo "participant sub-$LABEL on $(hostname), work dir $WORK"',
        f'"$RUNTIME" run --cleanenv{nv} -B {q(bids_abs + ":" + DATA_MOUNT + ":ro")} '
        f'-B {q(out_abs + ":" + OUT_MOUNT)} -B "$WORK:{WORK_MOUNT}" \\',
        f'    {q(sif)} {DATA_MOUNT} {OUT_MOUNT} participant --participant-label "$LABEL" \\',
        f"    {participant_app}",
    ]
    group_job = [
        "#!/bin/bash",
        *_sbatch_header(group_directives),
        "set -euo pipefail",
        *runtime_lines,
        f"WORK={work_parent}/{job_name}_group_${{SLURM_JOB_ID}}",
        'mkdir -p "$WORK"',
        f'"$RUNTIME" run --cleanenv -B {q(bids_abs + ":" + DATA_MOUNT + ":ro")} '
        f'-B {q(out_abs + ":" + OUT_MOUNT)} -B "$WORK:{WORK_MOUNT}" \\',
        f"    {q(sif)} {DATA_MOUNT} {OUT_MOUNT} group {group_app}",
    ]

    # Quoted here-document delimiters: the job scripts reach sbatch verbatim, their variables
    # expand on the compute node.
    lines = [
        "#!/bin/bash",
        "# bids_facedecode on SLURM: one array task per participant, then the group level.",
        f"# Participants ({len(labels)}): {' '.join(labels)}",
        "# Submit from a login node with:  bash <this file>",
        "set -euo pipefail",
        f"mkdir -p {q(logs_abs)} {q(out_abs)}",
        "",
        "participant_job=$(sbatch --parsable <<'FACEDECODE_PARTICIPANT'",
        *participant_job,
        "FACEDECODE_PARTICIPANT",
        ")",
        'participant_job=${participant_job%%;*}  # --parsable prints "id[;cluster]"',
        "",
        "group_job=$(sbatch --parsable --dependency=afterok:\"$participant_job\" <<'FACEDECODE_GROUP'",
        *group_job,
        "FACEDECODE_GROUP",
        ")",
        "group_job=${group_job%%;*}",
        "",
        f'echo "submitted participant array $participant_job ({len(labels)} tasks) '
        f'and group job $group_job (after all succeed); logs in {logs_abs}"',
    ]
    return "\n".join(lines) + "\n"
