"""Checks made before any heavy work: the BIDS validator and the cheap per-participant checks.

Everything here reads headers, sidecars, events, confounds tables and stimulus files, never
the BOLD data, so a mistake in the last of many participants fails in seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import DataError, FaceDecodeError, ValidationError

LOG = logging.getLogger(__name__)
VALIDATOR = "bids-validator-deno"
VALIDATOR_TIMEOUT_S = 600


def find_validator() -> str | None:
    """Path of the ``bids-validator-deno`` executable (PATH, then beside this Python), or None."""
    found = shutil.which(VALIDATOR)
    if found:
        return found
    beside = Path(sys.executable).parent / VALIDATOR
    return str(beside) if beside.is_file() else None


class ValidatorRun:
    """The BIDS validator running in the background on one directory (:func:`start_validator`).

    The validator is a separate program (``bids-validator-deno``): started before the dataset
    is indexed, it checks the dataset on another core while this process imports, indexes and
    collects the inputs, and :meth:`issues` waits for its report (the app asks for it before
    the first BOLD volume is read). Leaving the ``with`` block stops it if it still runs.
    """

    def __init__(self, exe: str, directory: Path):
        self.directory = directory
        # its report goes to (unlinked) temporary files, not pipes: a report larger than a pipe's
        # buffer (thousands of warnings) would stall the validator until it is read
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        try:
            # its own process group, so that stop() also ends any helper it started
            self._proc = subprocess.Popen([exe, "--json", str(directory)], stdout=self._out,
                                          stderr=self._err, start_new_session=True)
        except OSError as exc:
            self._close()
            raise ValidationError(f"{directory}: the BIDS validator did not run ({exc})") from exc

    def _read(self, f) -> str:
        f.seek(0)
        return f.read().decode("utf-8", errors="replace")

    def _close(self) -> None:
        self._out.close()
        self._err.close()

    def issues(self, timeout: float = VALIDATOR_TIMEOUT_S) -> list[dict]:
        """The validator's issues (keys ``code``, ``severity``, ``location``, ...).

        Raises
        ------
        ValidationError
            When the validator does not finish in ``timeout`` seconds or its report cannot be
            read.
        """
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise ValidationError(f"{self.directory}: the BIDS validator did not run ({exc})") from exc
        out, err = self._read(self._out), self._read(self._err)
        try:
            report = json.loads(out)
            return list(report["issues"]["issues"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            tail = (err or out).strip().splitlines()[-1:] or ["no output"]
            raise ValidationError(f"{self.directory}: the BIDS validator failed (exit "
                                  f"{self._proc.returncode}: {tail[0][:200]})") from exc

    def stop(self) -> None:
        """Kill the validator (its process group) if it still runs, and reap it."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        self._close()

    def __enter__(self) -> ValidatorRun:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_validator(directory: Path) -> ValidatorRun | None:
    """Start the BIDS validator (3.x) on ``directory`` in the background; None when it is not
    installed.

    Raises
    ------
    ValidationError
        When the executable exists but cannot be started.
    """
    exe = find_validator()
    return None if exe is None else ValidatorRun(exe, directory)


def validator_issues(directory: Path) -> list[dict] | None:
    """Run the BIDS validator (3.x) on ``directory``; its issues, or None when it is not installed.

    Returns
    -------
    list of dict
        The validator's issues (keys ``code``, ``severity``, ``location``, ...).

    Raises
    ------
    ValidationError
        When the validator runs but its report cannot be read.
    """
    run = start_validator(directory)
    if run is None:
        return None
    with run:
        return run.issues()


def validate_bids(bids_dir: Path, started: ValidatorRun | None = None) -> list[dict]:
    """Validate the input dataset; raise on errors, log warnings.

    Parameters
    ----------
    bids_dir : Path
    started : ValidatorRun, optional
        The validator already started on ``bids_dir`` (:func:`start_validator`); run here when
        omitted.

    Raises
    ------
    ValidationError
        Naming the first file with an error, its code and the number of errors.
    """
    if started is not None:
        issues = started.issues()
    else:
        issues = validator_issues(bids_dir)
    if issues is None:
        LOG.warning("%s not found: the input was not validated (install the PyPI package "
                    "bids-validator-deno, or pass --skip-bids-validation)", VALIDATOR)
        return []
    errors = [i for i in issues if i.get("severity") == "error"]
    n_warn = sum(1 for i in issues if i.get("severity") == "warning")
    if n_warn:
        LOG.info("BIDS validator: %d warning(s) on %s", n_warn, bids_dir)
    if errors:
        first = errors[0]
        where = f"{bids_dir}{first.get('location', '')}" if first.get("location") else str(bids_dir)
        msg = " ".join(str(first.get("issueMessage") or "").split())[:200]
        raise ValidationError(
            f"{where}: BIDS validator error {first.get('code')}"
            + (f" ({msg})" if msg else "")
            + (f" and {len(errors) - 1} more error(s)" if len(errors) > 1 else "")
            + "; fix the dataset or pass --skip-bids-validation"
        )
    return issues


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


def validate_participants(subjects: Sequence[str], collect: Callable[[str], object],
                          dims: Sequence[int], to_fit: Sequence[str] | None = None) -> dict[str, object]:
    """Collect and check every participant's inputs before any of them is analysed.

    Parameters
    ----------
    subjects : sequence of str
    collect : callable
        ``collect(subject) -> ParticipantInputs`` (cheap: headers, events, stimuli).
    dims : sequence of int
        Latent dimension of each decoded space.
    to_fit : sequence of str, optional
        The spaces whose map is fitted from the data (those without a ``--decoder-from``
        decoder; None: all); see :func:`check_enough_trials`.

    Returns
    -------
    dict
        Subject label -> its inputs.

    Raises
    ------
    FaceDecodeError
        The first problem found; the problems of the other participants are logged.
    """
    found: dict[str, object] = {}
    problems: list[FaceDecodeError] = []
    for subject in subjects:
        try:
            inputs = collect(subject)
            check_enough_trials(inputs, dims, to_fit)
            found[subject] = inputs
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
