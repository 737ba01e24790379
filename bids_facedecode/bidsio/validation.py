"""The BIDS validator (``bids-validator-deno``), started in the background on the input.

The app starts it before indexing the dataset and reads its verdict before the first BOLD
volume is read; the cheap per-participant checks are :mod:`bids_facedecode.workflow.checks`.
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
from pathlib import Path

from ..errors import ValidationError

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
