"""One participant's whole analysis, without writing anything: inputs, GLM, decoding.

Order: the latents of the participant's stimuli, the analysis mask (the ``--decoder-from``
decoder's, or the participant's own), the one data pass through the GLM, then per latent space
the decoding and its evaluation (:mod:`bids_facedecode.workflow.decoding`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..bidsio.masks import participant_mask
from ..config import Settings
from ..device import describe_device
from .checks import CheckedParticipant, trial_shortfall
from .decoding import SpaceResult, decode_space
from .design_record import DesignRecord, first_run_design
from .encoding_participant import ParticipantEncoding, participant_encoding
from .inputs import ParticipantInputs
from .reuse import reuse_mask
from .spaces import LatentSpace, compute_latents
from .streaming import fit_joint_glm

LOG = logging.getLogger(__name__)


@dataclass
class ParticipantResult:
    """What the writer and the report artefacts of one participant are made from."""

    subject: str
    inputs: ParticipantInputs
    mask_img: object
    spaces: dict[str, SpaceResult]
    device: str
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    design: DesignRecord | None = None  # the first run's design, as fitted
    encoding: ParticipantEncoding | None = None  # every space's encoding accuracy (None: --no-encoding)


def analyse_participant(settings: Settings, subject: str, checked: CheckedParticipant,
                        spaces: list[LatentSpace], device: torch.device) -> ParticipantResult:
    """The whole participant analysis, without writing outputs.

    ``checked`` holds the participant's inputs and analysis plan
    (:func:`~bids_facedecode.workflow.checks.check_participants`), the ``--decoder-from``
    decoders among them.
    """
    inputs, analyses = checked.inputs, checked.analyses
    saved = analyses.saved
    timings = {}
    t0 = time.perf_counter()
    LOG.info("sub-%s: %d runs, %d volumes, %d training trials (%d unique images), %d test images, "
             "%d imagery trials", subject, len(inputs.runs), inputs.n_scans, len(inputs.train_trial_ids),
             len(inputs.train_ids), len(inputs.test_ids), inputs.n_imagery_trials)
    if not inputs.confounds:
        LOG.warning("sub-%s: raw BOLD without confounds: the GLM has no motion (or other "
                    "confound) regressors; preprocess with fMRIPrep and pass --derivatives to "
                    "include them", subject)
    cache = settings.work_dir / "cache" / f"sub-{subject}" if settings.work_dir else None
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
    analyses.map_to_mask(mask_img, settings.bids_dir, inputs)
    ne = fit_joint_glm(inputs, latents, mask, settings, device, cache,
                       partitions=(analyses.halves, analyses.cv))
    timings["glm"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    results = {s.name: decode_space(s, ne, inputs, latents, settings, analyses) for s in spaces}
    timings["decode"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    encoding = participant_encoding(ne, latents, inputs, analyses, settings)  # no data pass
    timings["encoding"] = time.perf_counter() - t3
    return ParticipantResult(subject, inputs, mask_img, results, describe_device(device), timings,
                             design=first_run_design(inputs, latents, settings), encoding=encoding)
