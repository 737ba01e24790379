"""Provenance of a run: library versions, the input dataset's description, captured warnings.

Written with the outputs (``logs/sub-<label>_config.json``) so the reports can show them
without importing anything from the run that produced them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

#: Distributions whose versions determine the results (import name differs for some).
LIBRARIES = ("numpy", "scipy", "pandas", "nibabel", "nilearn", "pybids", "torch", "safetensors",
             "scikit-image", "matplotlib", "pillow", "jinja2")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries behind the results (``"not installed"`` if absent)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def dataset_info(bids_dir: Path) -> dict:
    """The fields of the input dataset's ``dataset_description.json`` a reader cares about."""
    path = Path(bids_dir) / "dataset_description.json"
    info: dict = {"path": str(bids_dir)}
    try:
        desc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return info
    for key in ("Name", "BIDSVersion", "DatasetType", "DatasetDOI", "License", "Authors"):
        if key in desc:
            info[key] = desc[key]
    return info


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.append(f"{record.levelname}: {record.getMessage()}")
        except Exception:  # a malformed log call must not break the analysis
            self.handleError(record)


@contextlib.contextmanager
def collect_warnings(sink: list[str]) -> Iterator[list[str]]:
    """Append every WARNING-or-worse message logged by the package (logger ``bids_facedecode``
    and its children) to ``sink`` while the block runs."""
    handler = _ListHandler(sink)
    logger = logging.getLogger("bids_facedecode")
    logger.addHandler(handler)
    try:
        yield sink
    finally:
        logger.removeHandler(handler)
