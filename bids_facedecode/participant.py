"""Participant level: the driver. It orders the steps and owns none of them.

Order of work: start the BIDS validator (a separate program, on another core), index the dataset,
wait for the validator's verdict, open the latent spaces, then check and plan every selected
participant (:mod:`bids_facedecode.workflow.checks`) before the first BOLD volume is read. Each
participant is then analysed under its lock (:mod:`bids_facedecode.workflow.analysis`), its
outputs written (:mod:`bids_facedecode.bidsio.participant_outputs`), then the report's
artefacts and the report (:mod:`bids_facedecode.report`), all staged and committed as one set
(:mod:`bids_facedecode.bidsio.derivatives`); participants whose outputs are complete are
skipped unless ``--overwrite`` (:mod:`bids_facedecode.workflow.rerun`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch

from .bidsio import derivatives as deriv
from .bidsio.layout import index_dataset, read_filter_file, resolve_labels
from .bidsio.participant_outputs import write_participant_outputs
from .bidsio.validation import start_validator, validate_bids
from .config import Settings
from .device import describe_device, select_device
from .errors import FaceDecodeError
from .provenance import collect_warnings
from .runtime import settle
from .workflow.analysis import ParticipantResult, analyse_participant
from .workflow.checks import check_participants
from .workflow.decoding import load_saved_decoders
from .workflow.rerun import is_complete, recover, refuse_stale, remove_stale_report
from .workflow.spaces import open_spaces

LOG = logging.getLogger(__name__)
SUMMARY = (("pairwise_latent", "pairwise identification"),
           ("nway_latent", "n-way identification"),
           ("pairwise_image", "pairwise identification (image space)"),
           ("gender_balanced_accuracy", "gender balanced accuracy"),
           ("imagery_pairwise", "imagery identification"))


def write_outputs(result: ParticipantResult, settings: Settings) -> list[Path]:
    """Stage the participant's outputs, the report's artefacts and the report, then commit them
    as one set (lock held by the caller)."""
    staged = deriv.new_stage(settings.output_dir, result.subject)
    try:
        # the report, built inside the stage, reads the dataset description beside the outputs
        deriv.ensure_dataset_description(staged, settings.bids_dir)
        write_participant_outputs(result, settings, root=staged)
        _write_report(result, settings, staged)
        deriv.failpoint("staged")
        deriv.ensure_dataset_description(settings.output_dir, settings.bids_dir)
        deriv.ensure_bidsignore(settings.output_dir)
        final = deriv.commit_stage(settings.output_dir, result.subject)
    except BaseException:
        deriv.discard_stage(settings.output_dir, result.subject)
        raise
    remove_stale_report(settings, result.subject, final)
    return final


def _write_report(result: ParticipantResult, settings: Settings, staged: Path) -> None:
    """The report's figures, tiles, design table and citation, then the HTML built from the
    staged files; a failed HTML report is logged, never fatal for the analysis."""
    from .report.artefacts import write_report_artefacts

    write_report_artefacts(result, settings, staged)
    try:
        from .report.participant_report import write_participant_report

        write_participant_report(staged, result.subject, settings.task,
                                 verbose=settings.verbosity > 1)
    except Exception as exc:  # noqa: BLE001 - even a broken report package must not fail the run
        LOG.error("sub-%s: report failed: %s", result.subject, exc, exc_info=settings.verbosity > 1)


def run_participants(settings: Settings) -> int:
    """Participant level for every selected participant; returns the exit code."""
    if settings.reports_only:
        from .report.participant_report import rebuild_participant_reports
        return rebuild_participant_reports(settings)
    settle()  # imported modules
    # the validator (a separate program) checks the dataset on another core while it is indexed
    validator = None if settings.skip_bids_validation else start_validator(settings.bids_dir)
    try:
        layout = index_dataset(settings.bids_dir, settings.bids_database_dir, settings.derivatives)
        settle()  # the dataset index
        filters = read_filter_file(settings.bids_filter_file)
        subjects = resolve_labels(layout.get_subjects(), settings.participant_label, "sub",
                                  settings.bids_dir)
        if not settings.skip_bids_validation:
            validate_bids(settings.bids_dir, validator)
    finally:
        if validator is not None:
            validator.stop()
    device = select_device(settings.device)
    torch.set_num_threads(max(1, settings.nprocs))  # containers default OMP_NUM_THREADS to 1
    LOG.info("device: %s, %d CPU threads", describe_device(device), settings.nprocs)
    spaces = open_spaces(settings, device)

    for subject in subjects:
        recover(settings, subject)
    complete = [] if settings.overwrite else [s for s in subjects if is_complete(settings, s)]
    refuse_stale(settings, complete)
    todo = [s for s in subjects if s not in complete]
    for subject in sorted(set(subjects) - set(todo)):
        print(f"sub-{subject}: outputs complete, skipped (use --overwrite to recompute)")
    saved = load_saved_decoders(settings)  # --decoder-from, by space
    checked = check_participants(settings, layout, todo, filters, spaces, saved)
    settle()  # the participants' inputs and the latent models

    failed: list[FaceDecodeError] = []
    for subject in todo:
        t0 = time.perf_counter()
        with deriv.ParticipantLock(settings.output_dir, subject):
            deriv.recover_participant(settings.output_dir, subject)
            if not settings.overwrite and is_complete(settings, subject):  # another job finished it
                print(f"sub-{subject}: outputs complete, skipped (use --overwrite to recompute)")
                continue
            warnings: list[str] = []
            try:
                with collect_warnings(warnings):  # shown in the report's warnings section
                    result = analyse_participant(settings, subject, checked[subject], spaces, device)
                    result.warnings = warnings
                    deriv.failpoint("analysed")
                    write_outputs(result, settings)
            except FaceDecodeError as exc:
                if len(todo) == 1:
                    raise
                print(f"bids_facedecode: error: sub-{subject}: {exc}", file=sys.stderr)
                failed.append(exc)
                continue
        for name, res in result.spaces.items():
            for metric, label in SUMMARY:
                if metric in res.metrics:
                    m = res.metrics[metric]
                    print(f"sub-{subject} {name} {label}: {m['value']:.2f} "
                          f"(chance {m['chance']:.2f}, p={m['p_value']:.2g})")
        LOG.info("sub-%s done in %.1f s", subject, time.perf_counter() - t0)
    return failed[0].exit_code if failed else 0
