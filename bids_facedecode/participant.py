"""Participant level: BIDS runs -> joint GLM -> decoded, reconstructed and evaluated faces.

This module only orchestrates the steps in :mod:`bids_facedecode.workflow`; reading lives in
:mod:`bids_facedecode.bidsio`, the math in :mod:`design`, :mod:`glm`, :mod:`decode` and
:mod:`evaluate`, the writing in :mod:`bids_facedecode.bidsio.participant_outputs`.

Order of work: start the BIDS validator (a separate program, on another core), index the dataset,
wait for the validator's verdict, open the latent spaces, then check
every selected participant cheaply (headers, events, stimuli, trial counts) before the first
BOLD volume is read. Each participant is then analysed under its lock and its outputs are
staged and committed as one set (:mod:`bids_facedecode.bidsio.derivatives`); participants
whose outputs are complete are skipped unless ``--overwrite``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .bidsio import derivatives as deriv
from .bidsio.layout import index_dataset, read_filter_file, resolve_labels
from .bidsio.masks import participant_mask
from .bidsio.participant_outputs import metrics_path
from .bidsio.validation import (
    start_validator,
    trial_shortfall,
    validate_bids,
    validate_participants,
)
from .config import Settings
from .device import describe_device, select_device
from .errors import FaceDecodeError, UsageError
from .provenance import collect_warnings
from .runtime import settle
from .workflow.decoding import SpaceResult, decode_space, load_saved_decoders, plan_analyses
from .workflow.design_record import first_run_design
from .workflow.encoding_participant import participant_encoding
from .workflow.inputs import ParticipantInputs, collect_inputs
from .workflow.reuse import reuse_mask
from .workflow.spaces import LatentSpace, compute_latents, open_spaces
from .workflow.streaming import fit_joint_glm

LOG = logging.getLogger(__name__)


@dataclass
class ParticipantResult:
    subject: str
    inputs: ParticipantInputs
    mask_img: object
    spaces: dict[str, SpaceResult]
    device: str
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    design: object | None = None  # workflow.design_record.DesignRecord of the first run (report)
    encoding: object | None = None  # workflow.encoding_participant.ParticipantEncoding


def analyse_participant(settings: Settings, layout, subject: str, spaces: list[LatentSpace],
                        device: torch.device, filters: dict,
                        inputs: ParticipantInputs | None = None,
                        saved: dict | None = None) -> ParticipantResult:
    """The whole participant analysis, without writing outputs.

    ``inputs`` are the participant's already collected inputs (collected here when omitted);
    ``saved`` the ``--decoder-from`` decoders by space (read here when omitted).
    """
    timings = {}
    t0 = time.perf_counter()
    if inputs is None:
        inputs = collect_inputs(settings, layout, subject, filters)
    LOG.info("sub-%s: %d runs, %d volumes, %d training trials (%d unique images), %d test images, "
             "%d imagery trials", subject, len(inputs.runs), inputs.n_scans, len(inputs.train_trial_ids),
             len(inputs.train_ids), len(inputs.test_ids), inputs.n_imagery_trials)
    if not inputs.confounds:
        LOG.warning("sub-%s: raw BOLD without confounds: the GLM has no motion (or other "
                    "confound) regressors; preprocess with fMRIPrep and pass --derivatives to "
                    "include them", subject)
    cache = settings.work_dir / "cache" / f"sub-{subject}" if settings.work_dir else None
    if saved is None:
        saved = load_saved_decoders(settings)
    short = (trial_shortfall(inputs, [s.dim for s in spaces])
             if all(s.name in saved for s in spaces) else None)
    if short:  # every space has its decoder: no latent map to fit, so no latent block either
        LOG.info("sub-%s %s: the GLM has no latent block (the training trials, if any, are "
                 "modelled by the face regressor alone); decoded with the saved decoders",
                 subject, short)
    latents = compute_latents(spaces, inputs, cache, latent_block=short is None)
    timings["inputs_and_latents"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    mask_img = reuse_mask(list(saved.values()), inputs.runs[0])  # --decoder-from: its mask
    if mask_img is None:
        mask_img = participant_mask(inputs.runs, cache)  # a raw run 1 is cached while masked
    mask = np.asarray(mask_img.dataobj).astype(bool)
    analyses = plan_analyses(settings, inputs, mask_img, saved)
    ne = fit_joint_glm(inputs, latents, mask, settings, device, cache,
                       partitions=(analyses.halves, analyses.cv))
    timings["glm"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    results = {s.name: decode_space(s, ne, inputs, latents, settings, analyses) for s in spaces}
    timings["decode"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    encoding = participant_encoding(ne, latents, inputs, analyses, settings)  # no data pass
    timings["encoding"] = time.perf_counter() - t3
    result = ParticipantResult(subject, inputs, mask_img, results, describe_device(device), timings)
    result.encoding = encoding
    result.design = first_run_design(inputs, latents, settings)
    return result


def is_complete(settings: Settings, subject: str) -> bool:
    """Whether ``output_dir`` holds a readable metrics JSON of every requested latent space."""
    for space in settings.latent_spaces:
        path = metrics_path(settings.output_dir, subject, settings.task, space)
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        if not isinstance(doc, dict) or doc.get("space") != space or "metrics" not in doc:
            return False
    return True


def changed_settings(settings: Settings, subject: str) -> dict[str, tuple]:
    """Result settings that differ between ``subject``'s complete outputs and this run.

    Returns ``{field: (recorded, now)}`` over the requested spaces (empty when they agree, or
    when the outputs predate the record).
    """
    diff: dict[str, tuple] = {}
    for space in settings.latent_spaces:
        path = metrics_path(settings.output_dir, subject, settings.task, space)
        try:
            recorded = json.loads(path.read_text()).get("settings")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if not isinstance(recorded, dict):
            continue
        now = json.loads(json.dumps(settings.result_settings(space)))  # tuples as lists
        for key, value in now.items():
            if key in recorded and recorded[key] != value:
                diff.setdefault(key, (recorded[key], value))
    return diff


def _refuse_stale(settings: Settings, complete: list[str]) -> None:
    """Stop before any work when complete outputs were made with other result settings."""
    stale = []
    for subject in complete:
        diff = changed_settings(settings, subject)
        if diff:
            shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(diff.items())[:4])
            stale.append(f"sub-{subject} ({shown})")
    if stale:
        raise UsageError(
            f"{settings.output_dir}: complete outputs were made with other settings: "
            f"{', '.join(stale)}; use --overwrite to replace them, or another output_dir"
        )


def _recover(settings: Settings, subject: str) -> None:
    """Finish or discard what a killed run left for ``subject`` (skipped if another job holds it)."""
    if not deriv.stage_dir(settings.output_dir, subject).exists():
        return
    with deriv.ParticipantLock(settings.output_dir, subject, blocking=False) as lock:
        if lock.acquired:
            what = deriv.recover_participant(settings.output_dir, subject)
            if what:
                LOG.warning("sub-%s: outputs of an interrupted run %s", subject, what)


def write_outputs(result: ParticipantResult, settings: Settings) -> list[Path]:
    """Stage every output of the participant, then commit them as one set (lock held by the caller)."""
    from .bidsio.participant_outputs import write_participant_outputs

    staged = deriv.new_stage(settings.output_dir, result.subject)
    try:
        # the report, built inside the stage, reads the dataset description beside the outputs
        deriv.ensure_dataset_description(staged, settings.bids_dir)
        write_participant_outputs(result, settings, root=staged)
        deriv.failpoint("staged")
        deriv.ensure_dataset_description(settings.output_dir, settings.bids_dir)
        deriv.ensure_bidsignore(settings.output_dir)
        final = deriv.commit_stage(settings.output_dir, result.subject)
    except BaseException:
        deriv.discard_stage(settings.output_dir, result.subject)
        raise
    report = settings.output_dir / f"sub-{result.subject}.html"
    if report not in final and report.is_file():  # the new report failed: drop the old one
        report.unlink()
        LOG.error("sub-%s: removed the stale report %s", result.subject, report)
    return final


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
        _recover(settings, subject)
    complete = [] if settings.overwrite else [s for s in subjects if is_complete(settings, s)]
    _refuse_stale(settings, complete)
    todo = [s for s in subjects if s not in complete]
    for subject in sorted(set(subjects) - set(todo)):
        print(f"sub-{subject}: outputs complete, skipped (use --overwrite to recompute)")
    saved = load_saved_decoders(settings)  # --decoder-from, by space
    all_inputs = validate_participants(
        todo, lambda s: collect_inputs(settings, layout, s, filters), [s.dim for s in spaces],
        to_fit=[s.name for s in spaces if s.name not in saved])
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
                    result = analyse_participant(settings, layout, subject, spaces, device, filters,
                                                 all_inputs[subject], saved)
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
            for metric, label in (("pairwise_latent", "pairwise identification"),
                                  ("nway_latent", "n-way identification"),
                                  ("pairwise_image", "pairwise identification (image space)"),
                                  ("gender_balanced_accuracy", "gender balanced accuracy"),
                                  ("imagery_pairwise", "imagery identification")):
                if metric in res.metrics:
                    m = res.metrics[metric]
                    print(f"sub-{subject} {name} {label}: {m['value']:.2f} "
                          f"(chance {m['chance']:.2f}, p={m['p_value']:.2g})")
        LOG.info("sub-%s done in %.1f s", subject, time.perf_counter() - t0)
    return failed[0].exit_code if failed else 0
