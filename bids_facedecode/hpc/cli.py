"""``bids_facedecode-slurm``: write a SLURM submission script for the container.

Arguments after ``--`` are passed to the app at the participant level.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from bids_facedecode import __version__
from bids_facedecode.argtypes import nonneg_int as _nonneg_int
from bids_facedecode.argtypes import positive_float as _positive_float
from bids_facedecode.argtypes import positive_int as _positive_int
from bids_facedecode.errors import CantCreateError, FaceDecodeError
from bids_facedecode.hpc.slurm import make_slurm_script


def build_parser() -> argparse.ArgumentParser:
    """The ``bids_facedecode-slurm`` argument parser."""
    p = argparse.ArgumentParser(
        prog="bids_facedecode-slurm",
        description="Write a bash script that submits bids_facedecode to SLURM: a job array "
        "with one participant per task (Apptainer/Singularity image), then the group level "
        "once every participant succeeded. Arguments after '--' go to the app.",
        epilog="Example: bids_facedecode-slurm /data/bids /data/out --image "
        "bids_facedecode.sif --gpus 1 -o submit.sh && bash submit.sh",
    )
    p.add_argument("bids_dir", help="BIDS dataset, as the compute nodes see it")
    p.add_argument("output_dir", help="derivatives folder, as the compute nodes see it")
    p.add_argument("--image", required=True, help="Singularity/Apptainer image (.sif) or URI")
    p.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        metavar="LABEL",
        help="participants to run (default: every sub-* folder in bids_dir)",
    )
    p.add_argument(
        "--nprocs", type=_positive_int, default=4, help="CPUs per participant task (default 4)"
    )
    p.add_argument(
        "--mem",
        type=_positive_float,
        default=16.0,
        metavar="GB",
        help="memory per participant task in GB (default 16)",
    )
    p.add_argument(
        "--gpus",
        type=_nonneg_int,
        default=0,
        help="GPUs per participant task (default 0: CPU only)",
    )
    p.add_argument(
        "--time",
        default="24:00:00",
        metavar="HH:MM:SS",
        help="wall time per participant task (default 24:00:00)",
    )
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument(
        "--group-nprocs", type=_positive_int, default=1, help="CPUs of the group job (default 1)"
    )
    p.add_argument(
        "--group-mem",
        type=_positive_float,
        default=4.0,
        metavar="GB",
        help="memory of the group job in GB (default 4)",
    )
    p.add_argument(
        "--group-time",
        default="01:00:00",
        metavar="HH:MM:SS",
        help="wall time of the group job (default 01:00:00)",
    )
    p.add_argument(
        "-w",
        "--work-dir",
        help="parent of per-task work folders (default: node-local $SLURM_TMPDIR/$TMPDIR)",
    )
    p.add_argument("--log-dir", help="SLURM log folder (default OUTPUT_DIR/logs/slurm)")
    p.add_argument(
        "--array-limit", type=_positive_int, help="at most this many participants at once"
    )
    p.add_argument("--job-name", default="facedecode", help="job name prefix")
    p.add_argument("-o", "--output", help="write the script here (default: standard output)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(args_in)
    try:
        script = make_slurm_script(
            args.bids_dir,
            args.output_dir,
            args.image,
            args.participant_label,
            nprocs=args.nprocs,
            mem_gb=args.mem,
            gpus=args.gpus,
            time=args.time,
            partition=args.partition,
            account=args.account,
            group_nprocs=args.group_nprocs,
            group_mem_gb=args.group_mem,
            group_time=args.group_time,
            work_dir=args.work_dir,
            log_dir=args.log_dir,
            array_limit=args.array_limit,
            job_name=args.job_name,
            extra_args=extra,
        )
        if args.output is None:
            sys.stdout.write(script)
            return 0
        out = Path(args.output)
        try:
            out.write_text(script)
            out.chmod(out.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as err:
            raise CantCreateError(f"{out}: cannot write the script ({err.strerror})") from None
        print(f"wrote {out}; submit with: bash {os.fspath(out)}", file=sys.stderr)
        return 0
    except FaceDecodeError as err:
        print(f"bids_facedecode-slurm: error: {err}", file=sys.stderr)
        return err.exit_code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
