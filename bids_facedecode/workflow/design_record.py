"""The design matrix of one run as a labelled table, kept with the outputs for the report.

The GLM streams runs and never keeps a design; the first run's design is built again by the
function the data pass calls, with the same arguments
(:func:`bids_facedecode.workflow.streaming.run_design`: confounds included), and its columns
are named for people (``<space>_z<k>``, ``test_<file stem>``) instead of the joint internal names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Settings
from .inputs import ParticipantInputs
from .spaces import JointLatents
from .streaming import run_design


@dataclass
class DesignRecord:
    """The full design matrix (shared and run-specific columns) of one run."""

    matrix: pd.DataFrame      # (T, P + K), index: frame times (s)
    run_label: str            # "ses-01 run-1"
    session: str | None
    run: str | None
    t_r: float
    bold: Path
    high_pass: float


def _readable_names(names: list[str], latents: JointLatents, inputs: ParticipantInputs) -> list[str]:
    rename: dict[str, str] = {}
    for space in latents.names:
        for k, col in enumerate(latents.z_columns(space), start=1):
            rename[col] = f"{space}_z{k}"
    stems = {s: Path(inputs.index.name(s)).stem for s in {*inputs.test_ids, *inputs.imagery_ids}}
    unique = len(set(stems.values())) == len(stems)
    for prefix, ids in (("test_", inputs.test_ids), ("img_", inputs.imagery_ids)):
        for s in ids:
            rename[prefix + s] = prefix + (stems[s] if unique else s[:10])
    return [rename.get(n, n) for n in names]


def first_run_design(inputs: ParticipantInputs, latents: JointLatents, settings: Settings) -> DesignRecord:
    """Design matrix of the participant's first run, columns named for people.

    Returns
    -------
    DesignRecord
        ``matrix`` has shape (T, P + K): the shared columns (latents, face, test, imagery,
        nuisance trial types) then the run-specific ones (cosine drift, intercept, confounds).
    """
    run = inputs.runs[0]
    frame_times = np.arange(run.n_scans) * run.t_r
    design = run_design(inputs, latents, settings, 0)
    names = _readable_names(list(design.shared_names), latents, inputs) + list(design.nuisance_names)
    matrix = pd.DataFrame(np.hstack([design.shared, design.nuisance]), columns=names,
                          index=pd.Index(frame_times, name="frame_time"))
    return DesignRecord(matrix, run.label, run.session, run.run, float(run.t_r), run.bold,
                        float(settings.high_pass))
