"""Command line: ``bids_facedecode bids_dir output_dir {participant,group} [options]``.

This module only parses arguments and dispatches; the work lives in
:mod:`bids_facedecode.participant` and :mod:`bids_facedecode.group`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from . import __version__
from .argtypes import positive_float as _positive_float
from .argtypes import positive_int as _positive_int
from .argtypes import probability as _probability
from .config import ANALYSIS_LEVELS, DEFAULT_TASK, EventSpec, Settings
from .errors import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_USAGE,
    AnalysisLevelError,
    FaceDecodeError,
    UsageError,
)

LOG = logging.getLogger("bids_facedecode")
DEFAULT_SPACE = "MNI152NLin2009cAsym"


def _space_file(text: str) -> tuple[str, Path]:
    space, sep, path = text.partition("=")
    if not sep or not space or not path:
        raise argparse.ArgumentTypeError(f"expected SPACE=FILE, got {text!r}")
    return space.strip().lower(), Path(path).expanduser()


def _analysis_level(text: str) -> str:
    """The analysis level; an unknown one exits 17 (BIDS-App specification), not 64."""
    if text not in ANALYSIS_LEVELS:
        raise AnalysisLevelError(f"analysis_level {text!r}: unknown analysis level; expected "
                                 f"{' or '.join(ANALYSIS_LEVELS)}")
    return text


def _epilog() -> str:
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in sorted(EXIT_CODES.items()))
    return (
        "exit codes:\n" + codes + "\n\n"
        "example:\n"
        "  bids_facedecode-simulate /data/sim\n"
        "  bids_facedecode /data/sim /data/out participant --participant-label 01\n"
        "  bids_facedecode /data/sim /data/out group\n"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also checked against boutiques.json by the tests).

    An unknown analysis level raises :class:`~bids_facedecode.errors.AnalysisLevelError` out of
    ``parse_args`` (exit code 17) instead of argparse's usage error.
    """
    from .config import (
        CORRECTIONS,
        DECODERS,
        DEVICE_CHOICES,
        LATENT_SPACES,
        NOISE_MODELS,
        PRECISIONS,
        SELECTIONS,
    )

    p = argparse.ArgumentParser(
        prog="bids_facedecode",
        description="Decode and reconstruct seen and imagined faces from fMRI "
                    "(VanRullen & Reddy, 2019) as a BIDS-App.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset")
    p.add_argument("output_dir", type=Path, help="where derivatives and reports are written")
    p.add_argument("analysis_level", type=_analysis_level, choices=ANALYSIS_LEVELS,
                   help="participant: fit and decode each participant; group: summarise output_dir")
    p.add_argument("--version", action="version", version=f"bids_facedecode {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, dest="verbosity",
                   help="more log output (-v info, -vv debug)")

    sel = p.add_argument_group("selecting data")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", default=[],
                     metavar="LABEL", help="participants to analyse (with or without 'sub-'); default all")
    sel.add_argument("--session-label", nargs="+", default=[], metavar="LABEL",
                     help="sessions to use (with or without 'ses-'); default all")
    sel.add_argument("--task", default=DEFAULT_TASK, help="task label of the face runs (default: %(default)s)")
    sel.add_argument("--bids-filter-file", type=Path, metavar="FILE",
                     help='JSON file of extra entity filters, e.g. {"bold": {"run": [1, 2]}}')
    sel.add_argument("--skip-bids-validation", "--skip_bids_validation", action="store_true",
                     help="do not run the BIDS validator on the input")
    sel.add_argument("--bids-database-dir", type=Path, metavar="DIR",
                     help="pybids index database folder, created or reused")
    sel.add_argument("--stimuli-dir", type=Path, metavar="DIR",
                     help="folder that stim_file paths are relative to (default: bids_dir/stimuli)")

    lat = p.add_argument_group("latent spaces")
    lat.add_argument("--latent-space", nargs="+", default=None, dest="latent_space",
                     metavar="SPACE", help=f"latent spaces to decode in ({', '.join(LATENT_SPACES)}); "
                     "default: every space with a model or a --latents table")
    lat.add_argument("--latents", action="append", type=_space_file, default=[], metavar="SPACE=FILE",
                     help="precomputed latents for SPACE (TSV with z1..zD, z0.. or z000.. columns, NPZ, "
                          "MATLAB .mat or a folder of _z.mat files, keyed by stimulus file or SHA-1/"
                          "SHA-256 content hash); repeatable")
    lat.add_argument("--latent-model", action="append", type=_space_file, default=[],
                     metavar="SPACE=DIR", help="a trained model directory for SPACE, e.g. the "
                     "authors' VAE-GAN from bids_facedecode-import-vaegan (default: the model "
                     "shipped with the package); repeatable")

    ev = p.add_argument_group("events (names matched case- and whitespace-insensitively)")
    defaults = EventSpec()
    for field, help_text in (
        ("trial_type_column", "events column with the trial type"),
        ("stim_column", "events column with the stimulus file"),
        ("oneback_column", "events column flagging one-back repeats"),
        ("imagined_column", "events column naming the imagined stimulus"),
        ("train_type", "trial type of training faces"),
        ("test_type", "trial type of test faces"),
        ("null_type", "trial type of null (fixation) trials"),
        ("imagery_type", "trial type of imagery trials"),
    ):
        ev.add_argument("--" + field.replace("_", "-"), default=getattr(defaults, field),
                        help=f"{help_text} (default: %(default)s)")

    model = p.add_argument_group("model and decoding")
    model.add_argument("--n-voxels", type=_positive_int, default=2000, metavar="N",
                       help="voxels selected by the F-test of the latent block (default: %(default)s)")
    model.add_argument("--high-pass", type=_positive_float, default=1.0 / 128.0, metavar="HZ",
                       help="cosine drift high-pass cutoff in Hz (default: 1/128)")

    ana = p.add_argument_group("analyses")
    ana.add_argument("--decoder", nargs="+", choices=DECODERS, default=["ols"],
                     dest="decoders", metavar="{" + ",".join(DECODERS) + "}",
                     help="decoders to run and report: ols (the paper's inverse), wls (voxels weighted "
                          "by 1/residual variance), ridge (penalty chosen by cross-validation across "
                          "sessions on training trials); the first names the saved decoder "
                          "(default: ols)")
    ana.add_argument("--voxel-selection", choices=SELECTIONS, default="ftest",
                     help="ftest: the --n-voxels voxels of highest latent-block F; noiseceiling: the "
                          "--n-voxels of highest split-half noise ceiling of the test images; paper: "
                          "every voxel significant both for face > fixation (one-sided t) and for the "
                          "latent block (F), however many (default: %(default)s)")
    ana.add_argument("--selection-p-face", type=_probability, default=0.05, metavar="P",
                     help="--voxel-selection paper: threshold on the p-value of face > fixation "
                          "(default: %(default)s)")
    ana.add_argument("--selection-p-latent", type=_probability, default=0.05, metavar="P",
                     help="--voxel-selection paper: threshold on the p-value of the latent-block F "
                          "(default: %(default)s)")
    ana.add_argument("--selection-correction", choices=CORRECTIONS, default="uncorrected",
                     help="--voxel-selection paper: the thresholds apply to uncorrected p-values, or "
                          "are false discovery rates (Benjamini-Hochberg over the analysed voxels, "
                          "each map on its own) (default: %(default)s)")
    ana.add_argument("--roi-atlas", metavar="ATLAS",
                     help="label atlas: decode within each region too; a NIfTI file (e.g. a "
                          "_dseg.nii.gz) or a TemplateFlow atlas looked up offline in "
                          "$TEMPLATEFLOW_HOME, as TEMPLATE:atlas-ATLAS[:desc-DESC][:res-RES] or "
                          "as its file name tpl-..._dseg.nii.gz")
    ana.add_argument("--roi-labels", type=Path, metavar="TSV",
                     help="labels table of --roi-atlas (index, name; default: the .tsv beside it, "
                          "or TemplateFlow's _dseg.tsv)")
    ana.add_argument("--imagery-labels", type=Path, metavar="TSV",
                     help="imagined face of each imagery trial: columns imagined_stim_file, onset and "
                          "events_file (or subject/participant_id, session, run; sub-/ses-/run- "
                          "prefixes optional)")
    ana.add_argument("--decoder-from", nargs="+", type=Path, default=[], metavar="NPZ",
                     help="decode with decoders saved by an earlier run (_decoder.npz, one per space) "
                          "instead of this data's own map; the data then need few or no training "
                          "trials (e.g. a later session of test and imagery trials only)")
    ana.add_argument("--n-permutations", type=_positive_int, default=1000, metavar="N",
                     help="random permutations of each identification and imagery permutation test; "
                          "when N! permutations of N items are no more, all are enumerated (an exact "
                          "test); the paper drew 1000000 (default: %(default)s)")
    ana.add_argument("--no-encoding", action="store_true",
                     help="skip the encoding analysis (each space's forward map predicting the test "
                          "images; its ridge penalty is chosen per voxel, which costs about as much "
                          "as the GLM for D in the hundreds)")

    perf = p.add_argument_group("performance")
    perf.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                      help="where the GLM runs; auto picks CUDA when present (default: %(default)s)")
    perf.add_argument("--nprocs", "--n-cpus", "--n_cpus", type=_positive_int, default=os.cpu_count() or 1,
                      metavar="N", help="parallel workers for reading runs (default: all cores)")
    perf.add_argument("--mem", "--mem-gb", type=_positive_float, default=4.0, metavar="GB",
                      help="memory budget in GB for the data and the GLM (batches, voxel chunks, "
                           "accumulators); the Python runtime adds ~0.5 GB (default: %(default)s)")
    perf.add_argument("-w", "--work-dir", type=Path, metavar="DIR",
                      help="scratch folder for the masked runs and the encoded stimulus "
                           "latents, cached so that a rerun or another latent space does not "
                           "decompress or encode them again (default: output_dir/../work; one "
                           "that cannot be written costs a warning and the cache)")
    perf.add_argument("--seed", type=int, default=42, help="master random seed (default: %(default)s)")
    _add_input_and_rerun_options(p)

    rep = p.add_argument_group("reports")
    rep.add_argument("--reports-only", action="store_true",
                     help="only rebuild the HTML reports (sub-<label>.html at the participant level, "
                          "group.html at the group level) from the outputs already in output_dir, "
                          "without refitting")

    engine = p.add_argument_group("GLM engine")
    engine.add_argument("--noise-model", choices=NOISE_MODELS, default="ar1",
                        help="temporal noise model of the GLM: ar1 (each run prewhitened with its "
                             "AR(1) coefficient, pooled over voxels; calibrated t, F and p-values) or "
                             "ols (white noise: t and F too large on autocorrelated fMRI noise) "
                             "(default: %(default)s)")
    engine.add_argument("--glm-precision", choices=PRECISIONS, default="mixed",
                        help="arithmetic of the big X'Y product: float32 summed in float64 "
                             "(mixed, ~1e-7 relative, 2x faster on CPUs) or float64 throughout "
                             "(default: %(default)s)")
    return p


def _add_input_and_rerun_options(p: argparse.ArgumentParser) -> None:
    """fMRIPrep derivatives as input, and how reruns treat existing outputs."""
    from .bidsio.confounds import COMPONENTS, DEFAULT_STRATEGY, PRESETS

    g = p.add_argument_group("preprocessed input (fMRIPrep) and reruns")
    g.add_argument("--derivatives", type=Path, metavar="PATH", dest="fmriprep_dir",
                   help="fMRIPrep derivatives folder: use its space-<S>_desc-preproc_bold runs, brain masks "
                        "(intersected across runs) and confounds instead of the raw BOLD")
    g.add_argument("--space", default=None, metavar="SPACE",
                   help=f"output space of the --derivatives runs (default: {DEFAULT_SPACE})")
    g.add_argument("--confounds", default=None, metavar="STRATEGY",
                   help="confounds of --derivatives runs, as nilearn's load_confounds: a preset "
                        f"({', '.join(PRESETS)}), 'none', or components joined by '+' "
                        f"({', '.join(COMPONENTS)}) (default: {DEFAULT_STRATEGY}: 24 motion parameters, "
                        "white-matter and CSF means, cosine drifts; censored volumes become spike regressors)")
    g.add_argument("--overwrite", action="store_true",
                   help="recompute participants whose outputs are complete (default: skip them "
                        "when made with the same settings, stop with exit 64 when not)")


def _input_and_rerun_settings(args: argparse.Namespace) -> dict:
    """Settings fields of :func:`_add_input_and_rerun_options`, checked."""
    from .bidsio.confounds import DEFAULT_STRATEGY, parse_strategy
    from .errors import NoInputError

    if args.fmriprep_dir is None:
        for flag, value in (("--space", args.space), ("--confounds", args.confounds)):
            if value is not None:
                raise UsageError(f"{flag} {value}: only used with --derivatives (raw BOLD has no "
                                 "space or confounds)")
        return {"derivatives": None, "space": None, "confounds": (), "overwrite": args.overwrite}
    derivatives = args.fmriprep_dir.expanduser().resolve()
    if not derivatives.is_dir():
        raise NoInputError(f"{derivatives}: --derivatives folder does not exist")
    space = (args.space or DEFAULT_SPACE).strip()
    if not space or any(c in space for c in "_-/ "):
        raise UsageError(f"--space {args.space!r}: expected a template label such as {DEFAULT_SPACE}")
    return {"derivatives": derivatives, "space": space,
            "confounds": parse_strategy(args.confounds if args.confounds is not None else DEFAULT_STRATEGY),
            "overwrite": args.overwrite}


def _roi_atlas_settings(args: argparse.Namespace) -> dict:
    """``roi_atlas`` and ``roi_labels``: a file as given, or a TemplateFlow name resolved now."""
    from .bidsio.templateflow_lookup import looks_like_templateflow, resolve_atlas

    labels = args.roi_labels.resolve() if args.roi_labels else None
    if args.roi_atlas is None:
        return {"roi_atlas": None, "roi_labels": labels}
    path = Path(args.roi_atlas).expanduser()
    if path.is_file() or not looks_like_templateflow(args.roi_atlas):
        return {"roi_atlas": path.resolve(), "roi_labels": labels}
    image, table = resolve_atlas(args.roi_atlas)
    return {"roi_atlas": image, "roi_labels": labels or table}


def settings_from_args(args: argparse.Namespace, argv: list[str]) -> Settings:
    """Check paths and combinations the parser cannot, and build :class:`Settings`."""
    from .config import LATENT_SPACES

    bids_dir = args.bids_dir.expanduser().resolve()
    output_dir = args.output_dir.expanduser().resolve()
    if not bids_dir.is_dir():
        from .errors import NoInputError
        raise NoInputError(f"{bids_dir}: bids_dir does not exist")
    if output_dir == bids_dir:
        raise UsageError(f"{output_dir}: output_dir must differ from bids_dir")
    if bids_dir in output_dir.parents and "derivatives" not in output_dir.relative_to(bids_dir).parts:
        raise UsageError(f"{output_dir}: output_dir is inside bids_dir; put it under "
                         f"{bids_dir / 'derivatives'} or outside the dataset")
    latents = dict(args.latents)
    models = dict(args.latent_model)
    spaces = tuple(s.lower() for s in args.latent_space) if args.latent_space else None
    if spaces is None:
        spaces = tuple(dict.fromkeys([*LATENT_SPACES_AVAILABLE(), *latents, *models]))
    if not spaces and args.analysis_level == "participant":
        raise UsageError("no latent space to decode in: this installation ships no latent model; "
                         "give --latents SPACE=FILE or --latent-model SPACE=DIR")
    for space in spaces:
        if space not in LATENT_SPACES and space not in latents and space not in models:
            raise UsageError(f"--latent-space {space}: unknown space; use one of {', '.join(LATENT_SPACES)} "
                             "or give --latents/--latent-model for it")
    events = EventSpec(**{f: getattr(args, f) for f in EventSpec.__dataclass_fields__})
    work = args.work_dir.expanduser().resolve() if args.work_dir else output_dir.parent / "work"
    return Settings(
        bids_dir=bids_dir, output_dir=output_dir, analysis_level=args.analysis_level,
        participant_label=tuple(args.participant_label), session_label=tuple(args.session_label),
        task=args.task, latent_spaces=spaces,
        latents={k: v.resolve() for k, v in latents.items()},
        latent_models={k: v.resolve() for k, v in models.items()},
        stimuli_dir=args.stimuli_dir.resolve() if args.stimuli_dir else None,
        device=args.device, work_dir=work, nprocs=args.nprocs, mem_gb=args.mem, seed=args.seed,
        skip_bids_validation=args.skip_bids_validation,
        bids_filter_file=args.bids_filter_file.resolve() if args.bids_filter_file else None,
        bids_database_dir=args.bids_database_dir.resolve() if args.bids_database_dir else None,
        n_voxels=args.n_voxels, high_pass=args.high_pass, events=events,
        verbosity=args.verbosity, command_line=shlex.join(["bids_facedecode", *argv]),
        **_input_and_rerun_settings(args),
        decoders=tuple(dict.fromkeys(args.decoders)), voxel_selection=args.voxel_selection,
        **_roi_atlas_settings(args),
        imagery_labels=args.imagery_labels.resolve() if args.imagery_labels else None,
        decoder_from=tuple(p.resolve() for p in args.decoder_from),
        n_permutations=args.n_permutations, encoding=not args.no_encoding,
        reports_only=args.reports_only,
        glm_precision=args.glm_precision, noise_model=args.noise_model,
        selection_p_face=args.selection_p_face, selection_p_latent=args.selection_p_latent,
        selection_correction=args.selection_correction,
    )


def LATENT_SPACES_AVAILABLE() -> list[str]:  # noqa: N802 - reads like a constant at the call site
    """Spaces with a model shipped in the package, in the default decoding order."""
    from .config import LATENT_SPACES
    from .latents.registry import shipped_models

    shipped = shipped_models()
    return [s for s in LATENT_SPACES if s in shipped]


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=min(level, logging.INFO), format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("bids_facedecode").setLevel(min(level, logging.INFO))
    for noisy in ("bids", "nilearn", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbosity < 2 else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit code (see ``--help``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors; the BIDS-App spec says 64
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
        return EXIT_USAGE if code == 2 else code
    except AnalysisLevelError as exc:
        print(f"bids_facedecode: error: {exc}", file=sys.stderr)
        return exc.exit_code
    _setup_logging(args.verbosity)
    try:
        settings = settings_from_args(args, argv)
        if settings.analysis_level == "participant":
            from .participant import run_participants
            return run_participants(settings)
        from .group import run_group
        return run_group(settings)
    except FaceDecodeError as exc:
        print(f"bids_facedecode: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bids_facedecode: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
