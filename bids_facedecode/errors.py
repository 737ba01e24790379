"""Exceptions that map user mistakes to BIDS-App exit codes.

Every error a user can cause derives from :class:`FaceDecodeError`; the CLI prints
its message on one line and exits with its ``exit_code``. Codes follow the BIDS-App
execution specification (sysexits.h).
"""

from __future__ import annotations

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_VALIDATION = 16
EXIT_ANALYSIS_LEVEL = 17
EXIT_NO_FILES_SELECTED = 18
EXIT_USAGE = 64
EXIT_DATA = 65
EXIT_NO_INPUT = 66
EXIT_CANT_CREATE = 73

EXIT_CODES = {
    EXIT_SUCCESS: "success",
    EXIT_FAILURE: "unexpected failure",
    EXIT_VALIDATION: "BIDS validation failed",
    EXIT_ANALYSIS_LEVEL: "unknown analysis level",
    EXIT_NO_FILES_SELECTED: "the filters selected no files",
    EXIT_USAGE: "command-line usage error",
    EXIT_DATA: "bad input data",
    EXIT_NO_INPUT: "input missing",
    EXIT_CANT_CREATE: "cannot create output",
}


class FaceDecodeError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is the one-line message."""

    exit_code = EXIT_FAILURE


class UsageError(FaceDecodeError):
    """Bad command-line arguments or option values."""

    exit_code = EXIT_USAGE


class AnalysisLevelError(UsageError):
    """The analysis level (the third positional argument) is not one the app runs."""

    exit_code = EXIT_ANALYSIS_LEVEL


class DataError(FaceDecodeError):
    """Input files exist but their content is wrong (events, stimuli, TR, NaN...)."""

    exit_code = EXIT_DATA


class NoInputError(FaceDecodeError):
    """A required input file or folder is missing."""

    exit_code = EXIT_NO_INPUT


class NoFilesSelectedError(FaceDecodeError):
    """Labels or filters selected no runs."""

    exit_code = EXIT_NO_FILES_SELECTED


class ValidationError(FaceDecodeError):
    """The BIDS validator reported errors."""

    exit_code = EXIT_VALIDATION


class CantCreateError(FaceDecodeError):
    """An output file or folder cannot be written."""

    exit_code = EXIT_CANT_CREATE
