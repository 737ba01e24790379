"""Rerun bookkeeping: which participants are complete, made with other settings, or left
half-committed by a killed run, and the report that no longer matches its outputs.

Everything is read through the output contract (:mod:`bids_facedecode.bidsio.outputs`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from ..bidsio import derivatives as deriv
from ..bidsio.outputs import metrics_path, participant_report_path, read_metrics
from ..config import Settings
from ..errors import DataError, UsageError

LOG = logging.getLogger(__name__)


def is_complete(settings: Settings, subject: str) -> bool:
    """Whether ``output_dir`` holds a readable metrics JSON of every requested latent space."""
    for space in settings.latent_spaces:
        try:
            record = read_metrics(metrics_path(settings.output_dir, subject, settings.task, space))
        except DataError:
            return False
        if record.space != space:
            return False
    return True


def changed_settings(settings: Settings, subject: str) -> dict[str, tuple]:
    """Result settings that differ between ``subject``'s complete outputs and this run.

    Returns ``{field: (recorded, now)}`` over the requested spaces (empty when they agree, or
    when the outputs predate the record).
    """
    diff: dict[str, tuple] = {}
    for space in settings.latent_spaces:
        try:
            recorded = read_metrics(metrics_path(settings.output_dir, subject, settings.task,
                                                 space)).settings
        except DataError:
            continue
        if not isinstance(recorded, dict):
            continue
        now = json.loads(json.dumps(settings.result_settings(space)))  # tuples as lists
        for key, value in now.items():
            if key in recorded and recorded[key] != value:
                diff.setdefault(key, (recorded[key], value))
    return diff


def refuse_stale(settings: Settings, complete: Sequence[str]) -> None:
    """Stop before any work when complete outputs were made with other result settings.

    Raises
    ------
    UsageError
        Naming the participants and up to four changed settings of each.
    """
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


def recover(settings: Settings, subject: str) -> None:
    """Finish or discard what a killed run left for ``subject`` (skipped if another job holds it)."""
    if not deriv.stage_dir(settings.output_dir, subject).exists():
        return
    with deriv.ParticipantLock(settings.output_dir, subject, blocking=False) as lock:
        if lock.acquired:
            what = deriv.recover_participant(settings.output_dir, subject)
            if what:
                LOG.warning("sub-%s: outputs of an interrupted run %s", subject, what)


def remove_stale_report(settings: Settings, subject: str, committed: Sequence) -> None:
    """After a commit without a new report (its build failed), remove the old one: it shows
    results that are no longer on disk."""
    report = participant_report_path(settings.output_dir, subject)
    if report not in committed and report.is_file():
        report.unlink()
        LOG.error("sub-%s: removed the stale report %s", subject, report)
