"""Participant level: BIDS runs -> joint GLM -> decoded, reconstructed and evaluated faces.

This module only orchestrates the steps in :mod:`bids_facedecode.workflow`; reading lives in
:mod:`bids_facedecode.bidsio`, the math in :mod:`design`, :mod:`glm`, :mod:`decode` and
:mod:`evaluate`, the writing in :mod:`bids_facedecode.bidsio.participant_outputs`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .bidsio.bold import compute_brain_mask
from .bidsio.layout import index_dataset, read_filter_file, resolve_labels
from .config import Settings
from .device import describe_device, select_device
from .errors import DataError, FaceDecodeError
from .workflow.decoding import SpaceResult, decode_space
from .workflow.inputs import ParticipantInputs, collect_inputs
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


def analyse_participant(settings: Settings, layout, subject: str, spaces: list[LatentSpace],
                        device: torch.device, filters: dict) -> ParticipantResult:
    """The whole participant analysis, without writing outputs."""
    timings = {}
    t0 = time.perf_counter()
    inputs = collect_inputs(settings, layout, subject, filters)
    LOG.info("sub-%s: %d runs, %d volumes, %d training trials (%d unique images), %d test images, "
             "%d imagery trials", subject, len(inputs.runs), inputs.n_scans, len(inputs.train_trial_ids),
             len(inputs.train_ids), len(inputs.test_ids), inputs.n_imagery_trials)
    latents = compute_latents(spaces, inputs)
    timings["inputs_and_latents"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    cache = settings.work_dir / "cache" / f"sub-{subject}" if settings.work_dir else None
    mask_img = compute_brain_mask(inputs.runs[0].bold, cache)  # caches run 1: read once
    mask = np.asarray(mask_img.dataobj).astype(bool)
    if not mask.any():
        raise DataError(f"{inputs.runs[0].bold}: the brain mask is empty")
    ne = fit_joint_glm(inputs, latents, mask, settings, device, cache)
    timings["glm"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    results = {s.name: decode_space(s, ne, inputs, latents, settings) for s in spaces}
    timings["decode"] = time.perf_counter() - t2
    return ParticipantResult(subject, inputs, mask_img, results, describe_device(device), timings)


def run_participants(settings: Settings) -> int:
    """Participant level for every selected participant; returns the exit code."""
    from .bidsio.derivatives import ensure_dataset_description
    from .bidsio.participant_outputs import write_participant_outputs

    layout = index_dataset(settings.bids_dir, settings.bids_database_dir)
    filters = read_filter_file(settings.bids_filter_file)
    subjects = resolve_labels(layout.get_subjects(), settings.participant_label, "sub", settings.bids_dir)
    device = select_device(settings.device)
    torch.set_num_threads(max(1, settings.nprocs))  # containers default OMP_NUM_THREADS to 1
    LOG.info("device: %s, %d CPU threads", describe_device(device), settings.nprocs)
    spaces = open_spaces(settings, device)
    failed: list[FaceDecodeError] = []
    for subject in subjects:
        t0 = time.perf_counter()
        try:
            result = analyse_participant(settings, layout, subject, spaces, device, filters)
            ensure_dataset_description(settings.output_dir, settings.bids_dir)
            write_participant_outputs(result, settings)
        except FaceDecodeError as exc:
            if len(subjects) == 1:
                raise
            print(f"bids_facedecode: error: sub-{subject}: {exc}")
            failed.append(exc)
            continue
        for name, res in result.spaces.items():
            for metric, label in (("pairwise_latent", "pairwise identification"),
                                  ("pairwise_image", "pairwise identification (image space)"),
                                  ("gender_accuracy", "gender accuracy"),
                                  ("imagery_pairwise", "imagery identification")):
                if metric in res.metrics:
                    m = res.metrics[metric]
                    print(f"sub-{subject} {name} {label}: {m['value']:.2f} (p={m['p_value']:.2g})")
        LOG.info("sub-%s done in %.1f s", subject, time.perf_counter() - t0)
    return failed[0].exit_code if failed else 0
