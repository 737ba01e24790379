"""``bids_facedecode-simulate``: write a simulated dataset, or a face corpus.

    bids_facedecode-simulate OUT [options]            a ds001761-shaped BIDS dataset
    bids_facedecode-simulate faces OUT [--n N] ...    a corpus of face PNGs + params.tsv
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bids_facedecode.argtypes import nonneg_float as _nonneg_float
from bids_facedecode.argtypes import nonneg_int as _nonneg_int
from bids_facedecode.argtypes import positive_int as _positive_int

from .. import __version__
from ..errors import EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE, FaceDecodeError

DEFAULT_CORPUS_SEED = 1234

_EPILOG = """\
face corpus (for training latent models):
  bids_facedecode-simulate faces OUT [--n 20000] [--seed 1234] [--size 64]
  writes OUT/M000001.png ... (gender prefix) and OUT/params.tsv; run
  'bids_facedecode-simulate faces --help' for its options.
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of the dataset command."""
    from .config import DEFAULT_NOISE_PCT

    p = argparse.ArgumentParser(
        prog="bids_facedecode-simulate",
        description="Simulate a BIDS dataset shaped like OpenNeuro ds001761 (faces seen and "
        "imagined, fMRI) with known truth in sourcedata/simulation/.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="output folder (must not exist or be empty)")
    p.add_argument("--subjects", type=_positive_int, default=2, help="subjects (default 2)")
    p.add_argument("--sessions", type=_positive_int, default=2, help="sessions (default 2)")
    p.add_argument("--runs", type=_positive_int, default=8,
                   help="faces runs per session (default 8)")
    p.add_argument("--resolution", type=float, default=4.0, metavar="MM",
                   help="voxel size in mm of the MNI box (default 4)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--image-size", type=_positive_int, default=64,
                   help="stimulus side in pixels (default 64)")
    p.add_argument("--n-test", type=_positive_int, default=20,
                   help="test faces, half male (default 20)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--noise", type=_nonneg_float, default=None, metavar="PCT",
                       help=f"noise SD in percent signal change (default {DEFAULT_NOISE_PCT})")
    noise.add_argument("--noiseless", action="store_true",
                       help="no noise, drift or motion in the brain")
    p.add_argument("--imagery-every", type=_nonneg_int, default=2, metavar="N",
                   help="every N-th run ends with an imagery trial; 0: none (default 2)")
    p.add_argument("--per-run-sidecars", action="store_true",
                   help="also write a _bold.json per run (Philips-like scaling fields)")
    p.add_argument("--fmriprep", action="store_true",
                   help="also write fMRIPrep-shaped derivatives in derivatives/fmriprep")
    p.add_argument("--nprocs", type=_positive_int, default=1,
                   help="processes generating runs in parallel (default 1)")
    p.add_argument("--brain-code", default="params", metavar="CODE",
                   help="what the face-selective voxels respond to linearly: 'params' (the "
                   "faces' generative parameters), 'pca' or 'vaegan' (the latents of a shipped "
                   "model), a model directory, or 'mix' (see --brain-code-mix); default params")
    p.add_argument("--brain-code-mix", nargs="+", default=(), metavar="CODE=WEIGHT",
                   help="with --brain-code mix: the components and their shares of the signal "
                   "variance, e.g. pca=0.5 params=0.5")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def build_faces_parser() -> argparse.ArgumentParser:
    """The parser of the ``faces`` sub-command."""
    p = argparse.ArgumentParser(
        prog="bids_facedecode-simulate faces",
        description="Write a corpus of procedural face images (PNG, gender prefix M/F) and "
        "their generative parameters (params.tsv), e.g. to train latent models.",
    )
    p.add_argument("out", type=Path, help="output folder (must not exist or be empty)")
    p.add_argument("--n", type=_positive_int, default=20000, help="images (default 20000)")
    p.add_argument("--seed", type=int, default=DEFAULT_CORPUS_SEED,
                   help=f"seed (default {DEFAULT_CORPUS_SEED})")
    p.add_argument("--size", type=_positive_int, default=64, help="side in pixels (default 64)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    return p


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return EXIT_SUCCESS if exc.code in (0, None) else EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "faces":
            args = _parse(build_faces_parser(), argv[1:])
            if isinstance(args, int):
                return args
            _setup_logging(args.verbose)
            from .corpus import write_face_corpus

            write_face_corpus(args.out, n=args.n, seed=args.seed, size=args.size)
            return EXIT_SUCCESS
        args = _parse(build_parser(), argv)
        if isinstance(args, int):
            return args
        _setup_logging(args.verbose)
        from .dataset import SimulationConfig, simulate_dataset

        cfg = SimulationConfig(
            subjects=args.subjects,
            sessions=args.sessions,
            runs=args.runs,
            resolution=args.resolution,
            seed=args.seed,
            image_size=args.image_size,
            n_test=args.n_test,
            noise=args.noise,
            noiseless=args.noiseless,
            imagery_every=args.imagery_every,
            per_run_sidecars=args.per_run_sidecars,
            fmriprep=args.fmriprep,
            nprocs=args.nprocs,
            brain_code=args.brain_code,
            brain_code_mix=tuple(args.brain_code_mix),
        )
        path = simulate_dataset(args.out, cfg)
        print(path)
        return EXIT_SUCCESS
    except FaceDecodeError as exc:
        print(f"bids_facedecode-simulate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bids_facedecode-simulate: interrupted", file=sys.stderr)
        return EXIT_FAILURE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
