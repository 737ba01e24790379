"""Checks of every selected participant made before any BOLD volume is read.

They read headers, sidecars, events, confounds tables and stimulus files, the saved decoders
and the atlas, never the BOLD data, so a mistake in the last of many participants fails in
seconds and nothing is written: the inputs are collected, the training data checked against
the latent dimensions (the model's capacity) and the analysis plan (split halves, ridge folds,
regions) made and the ``--decoder-from`` decoders' grid compared with the data's, for every
participant first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..config import Settings
from ..errors import DataError, FaceDecodeError
from .decoding import Analyses, plan_analyses
from .inputs import ParticipantInputs, collect_inputs
from .reuse import reuse_mask

LOG = logging.getLogger(__name__)
T = TypeVar("T")


def trial_shortfall(inputs, dims: Sequence[int]) -> str | None:
    """Why the participant's training trials cannot support the latent block, or None.

    The GLM estimates one regressor per latent dimension (``D = sum(dims)``) plus the face
    regressor from the training trials: that needs at least ``D + 1`` distinct training images
    (otherwise the latent regressors are linearly dependent), more training trials than the
    ``max(dims) + 1 + n_test + n_imagery`` regressors of one space, and more volumes than
    regressors in all. The paper had ~8,000 images for D = 1024.

    Returns
    -------
    str or None
        The counts and the minimum, as the end of a sentence that names the participant.
    """
    total = int(sum(dims))
    n_unique = len(inputs.train_ids)
    n_trials = len(inputs.train_trial_ids)
    if n_trials == 0:
        return "has no training trials"
    if n_unique < total + 1:
        return (f"has {n_unique} distinct training images but decoding {total} latent dimensions "
                f"needs at least {total + 1} (D + 1: the D latent regressors and the face "
                "regressor must be linearly independent)")
    need = max(dims) + 1 + len(inputs.test_ids) + len(inputs.imagery_ids)
    if n_trials <= need:
        return (f"has {n_trials} training trials; a map with {max(dims)} latent dimensions needs "
                f"more than {need} (latents, face, test and imagery regressors)")
    n_regressors = total + 1 + len(inputs.test_ids) + len(inputs.imagery_ids) + len(inputs.nuisance_kinds)
    if inputs.n_scans <= n_regressors + 2 * len(inputs.runs):
        return (f"has {inputs.n_scans} volumes for {n_regressors} regressors plus each run's "
                "intercept and drifts")
    return None


def check_enough_trials(inputs, dims: Sequence[int], to_fit: Sequence[str] | None = None) -> None:
    """Enough training data for the joint latent map of the spaces fitted from these data.

    ``to_fit`` names the spaces without a saved decoder (``--decoder-from``; None: all of
    them). When every space has one (``to_fit`` empty), no latent map is fitted and any number
    of training trials will do (none at all, a later session of test and imagery trials; too
    few for the latent block, and they are modelled by the face regressor alone:
    :func:`trial_shortfall`).

    Raises
    ------
    DataError
        Naming the participant's folder, the counts and the minimum.
    """
    if to_fit is not None and not to_fit:
        return
    why = trial_shortfall(inputs, dims)
    if why is None:
        return
    folder = inputs.runs[0].events.parent
    if not inputs.train_trial_ids:
        raise DataError(
            f"{folder}: sub-{inputs.subject} has no training trials, so the brain-to-latent map "
            f"of {', '.join(to_fit) if to_fit else 'the latent spaces'} cannot be fitted; decode "
            "these data with a saved decoder for every latent space (--decoder-from)")
    raise DataError(f"{folder}: sub-{inputs.subject} {why}; add runs or use a smaller latent "
                    "space (or decode with a saved decoder for every space: --decoder-from)")


@dataclass
class CheckedParticipant:
    """A participant's inputs and analysis plan, made before its data pass."""

    inputs: ParticipantInputs
    analyses: Analyses


def check_all(subjects: Sequence[str], check: Callable[[str], T]) -> dict[str, T]:
    """Run ``check`` on every participant before any of them is analysed.

    Returns
    -------
    dict
        Subject label -> what ``check`` returned.

    Raises
    ------
    FaceDecodeError
        The first problem found; the problems of the other participants are logged.
    """
    found: dict[str, T] = {}
    problems: list[FaceDecodeError] = []
    for subject in subjects:
        try:
            found[subject] = check(subject)
        except FaceDecodeError as exc:
            problems.append(exc)
            if len(problems) > 1:
                LOG.error("sub-%s: %s", subject, exc)
    if problems:
        if len(problems) > 1:
            LOG.error("%d of %d participants failed validation; nothing was analysed",
                      len(problems), len(subjects))
        raise problems[0]
    return found


def check_participants(settings: Settings, layout, subjects: Sequence[str], filters: dict,
                       spaces: Sequence, saved: dict) -> dict[str, CheckedParticipant]:
    """Collect, check and plan every participant (see the module docstring).

    Parameters
    ----------
    settings : Settings
    layout : BIDSLayout
    subjects : sequence of str
    filters : dict
        ``--bids-filter-file`` entity filters.
    spaces : sequence of LatentSpace
        The decoded spaces (their ``name`` and ``dim``).
    saved : dict
        The ``--decoder-from`` decoders by space.

    Raises
    ------
    FaceDecodeError
        The first problem found (:func:`check_all`).
    """
    dims = [s.dim for s in spaces]
    to_fit = [s.name for s in spaces if s.name not in saved]

    def check(subject: str) -> CheckedParticipant:
        inputs = collect_inputs(settings, layout, subject, filters)
        check_enough_trials(inputs, dims, to_fit)
        reuse_mask(list(saved.values()), inputs.runs[0])  # the decoders' grid is the data's
        return CheckedParticipant(inputs, plan_analyses(settings, inputs, saved=saved))

    return check_all(subjects, check)
