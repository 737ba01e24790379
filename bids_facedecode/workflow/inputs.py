"""Everything read from BIDS for one participant: runs, normalised trials, stimulus identities."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..bidsio.confounds import load_run_confounds
from ..bidsio.events import IMAGERY, ONEBACK, TEST, TRAIN, read_events
from ..bidsio.labels import imagined_files_for_run, read_imagery_labels
from ..bidsio.layout import RunInfo, find_runs
from ..bidsio.stimuli import StimulusIndex
from ..config import Settings
from ..errors import DataError

LOG = logging.getLogger(__name__)


@dataclass
class ParticipantInputs:
    """Everything read from BIDS for one participant, before any model fitting."""

    subject: str
    runs: list[RunInfo]
    trials: list[pd.DataFrame]          # per run: onset, duration, kind, stim_id, ...
    index: StimulusIndex
    train_ids: list[str]                # unique training stimuli (content hashes)
    train_trial_ids: list[str]          # one per training trial (repeats included)
    test_ids: list[str]                 # test identities, sorted by file name
    imagery_ids: list[str]              # imagined identities (subset of test_ids) or []
    nuisance_kinds: list[str]
    n_imagery_trials: int = 0
    confounds: list[pd.DataFrame | None] | None = None  # per run (fMRIPrep derivatives), or None

    @property
    def n_scans(self) -> int:
        return sum(r.n_scans for r in self.runs)


def collect_inputs(settings: Settings, layout, subject: str, filters: dict) -> ParticipantInputs:
    """Find the participant's runs, read and normalise events, identify stimuli by content.

    Cheap: reads NIfTI headers, events, confounds tables and stimulus files, never the BOLD data.
    """
    space = settings.space if settings.derivatives is not None else None
    runs = find_runs(layout, subject, settings.task, settings.session_label, filters, space=space)
    index = StimulusIndex(settings.stimuli_dir or settings.bids_dir / "stimuli")
    trials = []
    imagery_table = read_imagery_labels(settings.imagery_labels) if settings.imagery_labels else None
    for run in runs:
        t = read_events(run.events, settings.events)
        if imagery_table is not None:  # --imagery-labels fills what the events do not say
            rows = np.flatnonzero((t["kind"] == IMAGERY).to_numpy() & (t["imagined_file"] == ""))
            t.loc[rows, "imagined_file"] = imagined_files_for_run(
                imagery_table, run, t.loc[rows, "onset"].to_numpy())
        face_rows = t["kind"].isin([TRAIN, TEST, ONEBACK]).to_numpy()
        stim_id = [index.identify(f, run.events) if is_face else ""
                   for f, is_face in zip(t["stim_file"], face_rows, strict=True)]
        img_rows = (t["kind"] == IMAGERY).to_numpy()
        for i in np.flatnonzero(img_rows):
            if t.at[i, "imagined_file"]:
                stim_id[i] = index.identify(t.at[i, "imagined_file"], run.events)
        t["stim_id"] = stim_id
        late = t["onset"] > run.n_scans * run.t_r
        if late.any():
            raise DataError(f"{run.events}: {int(late.sum())} trial(s) start after the run ends "
                            f"({run.n_scans} volumes x {run.t_r:g} s)")
        trials.append(t)
    all_trials = pd.concat(trials, ignore_index=True)
    train_trial_ids = all_trials.loc[all_trials["kind"] == TRAIN, "stim_id"].tolist()
    train_ids = list(dict.fromkeys(train_trial_ids))
    test_ids = sorted(set(all_trials.loc[all_trials["kind"] == TEST, "stim_id"]), key=index.name)
    if not train_ids and not settings.decoder_from:
        raise DataError(f"sub-{subject}: no '{settings.events.train_type}' trials in the events files "
                        "(data without training trials can only be decoded with a saved decoder: "
                        "--decoder-from)")
    if len(test_ids) < 2:
        raise DataError(f"sub-{subject}: need at least 2 test images ('{settings.events.test_type}' "
                        f"trials), found {len(test_ids)}")
    img = all_trials[all_trials["kind"] == IMAGERY]
    labelled = img["stim_id"] != ""
    if len(img) and not labelled.all():
        LOG.warning("sub-%s: %d of %d imagery trials have no imagined-face label; imagery is "
                    "modelled as nuisance and not evaluated (name the imagined faces in an events "
                    "column or with --imagery-labels)", subject, int((~labelled).sum()), len(img))
        for t in trials:
            t.loc[t["kind"] == IMAGERY, "kind"] = "imagery_unlabelled"
        imagery_ids: list[str] = []
    else:
        imagery_ids = sorted(set(img["stim_id"]), key=index.name)
        unknown = [index.name(i) for i in imagery_ids if i not in test_ids]
        if unknown:
            LOG.warning("sub-%s: imagined faces %s are not test faces; they are decoded but "
                        "not identified", subject, ", ".join(unknown))
    kinds = sorted({k for t in trials for k in t["kind"]} - {TRAIN, TEST, IMAGERY, "null"})
    confounds = None
    if space is not None:
        confounds = [load_run_confounds(r.bold, r.confounds, settings.confounds, r.n_scans) for r in runs]
    return ParticipantInputs(subject, runs, trials, index, train_ids, train_trial_ids, test_ids,
                             imagery_ids, kinds, n_imagery_trials=len(img), confounds=confounds)


