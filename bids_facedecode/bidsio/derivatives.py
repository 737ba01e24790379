"""Write BIDS derivatives: file names from entities, atomic writes, dataset_description.json.

Every file is written to a hidden temporary name in its final folder and renamed into place
(``os.replace`` is atomic on POSIX), so a crash never leaves a half-written file under a
name that a later run or the group level would read as a result.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from .. import __version__
from ..errors import CantCreateError

ENTITY_ORDER = ("sub", "ses", "task", "run", "space", "atlas", "roi", "label", "desc", "stat")
PIPELINE_NAME = "bids_facedecode"


def bids_name(entities: dict[str, str | None], suffix: str, extension: str) -> str:
    """``{"sub": "01", "task": "faces", "desc": "pca"}, "metrics", ".json"`` ->
    ``sub-01_task-faces_desc-pca_metrics.json``. Entities with value ``None`` are skipped."""
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unknown BIDS entities {sorted(unknown)}")
    parts = [f"{k}-{entities[k]}" for k in ENTITY_ORDER if entities.get(k) not in (None, "")]
    return "_".join(parts + [suffix]) + extension


_ENTITY = re.compile(r"^([a-zA-Z]+)-([a-zA-Z0-9]+)$")


def parse_bids_name(name: str) -> tuple[dict[str, str], str, str]:
    """``sub-01_task-faces_desc-pca_stat-F_statmap.nii.gz`` ->
    ``({"sub": "01", "task": "faces", "desc": "pca", "stat": "F"}, "statmap", ".nii.gz")``."""
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    entities = {}
    for part in parts[:-1]:
        m = _ENTITY.match(part)
        if m:
            entities[m.group(1)] = m.group(2)
    return entities, parts[-1], dot + ext


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path``.

    The temporary file lives in the same folder (same file system) under a hidden name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # keep the real extension last: nibabel and friends choose the format from it
        ext = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{ext}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise CantCreateError(f"{path.parent}: cannot create output ({exc.strerror})") from exc
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Atomically write a text file."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> Path:
    """Atomically write a binary file."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def write_json(path: Path, obj: Any) -> Path:
    """Atomically write JSON (sorted keys, NaN written as null)."""
    return write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n")


def write_tsv(path: Path, frame: pd.DataFrame) -> Path:
    """Atomically write a BIDS TSV (``n/a`` for missing values)."""
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", index=False, na_rep="n/a", float_format="%.6g", lineterminator="\n")
    return write_text(path, buf.getvalue())


def write_nifti(path: Path, img: nib.Nifti1Image, sidecar: dict | None = None) -> Path:
    """Atomically write a NIfTI image and, when given, its JSON sidecar (written first)."""
    path = Path(path)
    if sidecar is not None:
        write_json(Path(str(path).replace(".nii.gz", ".json").replace(".nii", ".json")), sidecar)
    return atomic_write(path, lambda p: nib.save(img, str(p)))


def dataset_description(container: str | None = None) -> dict:
    """The derivative ``dataset_description.json`` content."""
    generated = {"Name": PIPELINE_NAME, "Version": __version__,
                 "CodeURL": "https://github.com/bids-facedecode/bids_facedecode"}
    if container:
        generated["Container"] = {"Type": "docker", "Tag": container}
    return {
        "Name": "bids_facedecode: fMRI face decoding and reconstruction",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "HowToAcknowledge": "Cite VanRullen & Reddy (2019) Commun Biol 2:193 and bids_facedecode.",
    }


def ensure_dataset_description(output_dir: Path, source: Path | None = None) -> Path:
    """Write ``dataset_description.json`` unless an identical one exists (safe under concurrency)."""
    desc = dataset_description(os.environ.get("BIDS_FACEDECODE_CONTAINER"))
    if source is not None:
        desc["SourceDatasets"] = [{"URL": f"file://{Path(source).resolve()}"}]
    path = Path(output_dir) / "dataset_description.json"
    if path.is_file():
        try:
            if json.loads(path.read_text()) == _clean(desc):
                return path
        except (OSError, json.JSONDecodeError):
            pass
    return write_json(path, desc)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    return obj


# --------------------------------------------------------------------------------------------
# A participant's outputs as one all-or-nothing set: staged, then committed with a journal.
#
# Everything a participant writes (``sub-<label>/``, ``sub-<label>.html``, ``logs/...``) is first
# written under ``output_dir/.bids_facedecode/sub-<label>.stage/new/``. When the set is complete a
# READY marker is written, then each file is swapped into place (the old one is kept in
# ``stage/old/``), the ``sub-<label>/`` folder, which holds the metrics JSON that the group level
# and the skip logic key on, last and as one rename. A process killed before READY leaves the
# old outputs untouched (the stage is discarded by the next run); one killed after READY is
# rolled forward by the next run (`recover_participant`). Per-participant file locks serialise
# two jobs of the same participant; the files shared between participants
# (``dataset_description.json``, ``.bidsignore``, ``logs/CITATION.md``) are written by
# idempotent atomic renames, so a SLURM array writing into one output_dir cannot corrupt them.
# --------------------------------------------------------------------------------------------

STATE_DIR = ".bids_facedecode"
FAILPOINT_ENV = "BIDS_FACEDECODE_FAILPOINT"
BIDSIGNORE = (
    "# bids_facedecode outputs that the BIDS schema does not define yet\n"
    "*.html\nlogs/\ngroup/\nfigures/\n*_statmap.nii.gz\n*_statmap.json\n*_decoding.tsv\n"
    "*_decoding.mat\n*_decoder.npz\n*_metrics.json\n*_design.tsv\n*_design.json\n*_analyses.tsv\n"
    "*_regions.tsv\n*_regions.json\n"
)


def failpoint(name: str) -> None:
    """Kill this process with SIGKILL when ``$BIDS_FACEDECODE_FAILPOINT`` equals ``name``.

    Used by the crash tests to stop a run at a chosen point; a no-op otherwise.
    """
    if os.environ.get(FAILPOINT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def state_dir(output_dir: Path) -> Path:
    """Hidden bookkeeping folder of ``output_dir`` (locks and staging; ignored by BIDS tools)."""
    return Path(output_dir) / STATE_DIR


def stage_dir(output_dir: Path, subject: str) -> Path:
    """The staging folder of one participant; files go under its ``new/`` sub-folder."""
    return state_dir(output_dir) / f"sub-{subject}.stage"


def ensure_bidsignore(output_dir: Path) -> Path:
    """Make the output's ``.bidsignore`` list our non-schema outputs, keeping a user's own lines.

    Idempotent (safe when several jobs call it at once): writes only when a pattern is missing.
    """
    path = Path(output_dir) / ".bidsignore"
    try:
        current = path.read_text() if path.is_file() else ""
    except OSError:
        current = ""
    have = {line.strip() for line in current.splitlines()}
    missing = [line for line in BIDSIGNORE.splitlines() if line.strip() not in have]
    if not current:
        return write_text(path, BIDSIGNORE)
    if not [m for m in missing if m and not m.startswith("#")]:
        return path
    return write_text(path, current.rstrip("\n") + "\n" + "\n".join(missing) + "\n")


class ParticipantLock:
    """An exclusive ``flock`` on ``.bids_facedecode/sub-<label>.lock`` (blocking, with a log line).

    Use as a context manager; ``blocking=False`` makes ``acquired`` False instead of waiting.
    """

    def __init__(self, output_dir: Path, subject: str, blocking: bool = True):
        self.path = state_dir(output_dir) / f"sub-{subject}.lock"
        self.blocking = blocking
        self.acquired = False
        self._fd: int | None = None

    def __enter__(self) -> ParticipantLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CantCreateError(f"{self.path}: cannot create lock file ({exc.strerror})") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.acquired = True
        except BlockingIOError:
            if self.blocking:
                import logging

                logging.getLogger(__name__).warning(
                    "%s: another process works on this participant; waiting for it", self.path)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                self.acquired = True
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        if self._fd is not None:
            if self.acquired:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def new_stage(output_dir: Path, subject: str) -> Path:
    """A fresh, empty staging folder for the participant; returns its ``new/`` folder.

    Call with the participant's lock held, after :func:`recover_participant`.
    """
    stage = stage_dir(output_dir, subject)
    _remove_tree(stage)
    try:
        (stage / "new").mkdir(parents=True)
    except OSError as exc:
        raise CantCreateError(f"{stage}: cannot create staging folder ({exc.strerror})") from exc
    return stage / "new"


def discard_stage(output_dir: Path, subject: str) -> None:
    """Remove an uncommitted staging folder (after a failure)."""
    stage = stage_dir(output_dir, subject)
    if not (stage / "READY").exists():
        _remove_tree(stage)


def commit_stage(output_dir: Path, subject: str) -> list[Path]:
    """Swap the staged outputs of a participant into ``output_dir``; returns the final paths.

    Idempotent: after a crash anywhere in here, calling it again finishes the same commit.
    """
    stage = stage_dir(output_dir, subject)
    ready = stage / "READY"
    if not ready.exists():
        write_text(ready, "complete\n")
        failpoint("commit:ready")
    items = _stage_items(stage / "new", subject)
    final_paths = []
    for k, rel in enumerate(items):
        final_paths.append(_swap(stage, Path(output_dir), rel))
        failpoint(f"commit:{k}")
    failpoint("commit:swapped")
    _remove_tree(stage)
    return final_paths


def recover_participant(output_dir: Path, subject: str) -> str | None:
    """Finish or discard what a killed run left for ``subject`` (call with its lock held).

    Returns
    -------
    ``"rolled forward"``, ``"discarded"`` or None when there was nothing to do.
    """
    stage = stage_dir(output_dir, subject)
    for leftover in stage.parent.glob(f"{stage.name}.deleting.*"):
        import shutil

        shutil.rmtree(leftover, ignore_errors=True)
    if not stage.exists():
        return None
    if (stage / "READY").exists():
        commit_stage(output_dir, subject)
        return "rolled forward"
    _remove_tree(stage)
    return "discarded"


def _stage_items(new: Path, subject: str) -> list[Path]:
    """Relative paths to swap: every staged file outside ``sub-<label>/``, then that folder."""
    if not new.exists():
        return []
    sub = Path(f"sub-{subject}")
    files = sorted(p.relative_to(new) for p in new.rglob("*")
                   if p.is_file() and sub not in p.relative_to(new).parents)
    return files + ([sub] if (new / sub).exists() else [])


def _swap(stage: Path, output_dir: Path, rel: Path) -> Path:
    new, old, final = stage / "new" / rel, stage / "old" / rel, output_dir / rel
    if not new.exists() and not new.is_symlink():
        return final  # already swapped by an earlier, interrupted commit
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir() and not final.is_symlink():
            old.parent.mkdir(parents=True, exist_ok=True)
            _remove_tree(old)
            os.rename(final, old)
        os.replace(new, final)
    except OSError as exc:
        raise CantCreateError(f"{final}: cannot move the new output into place ({exc.strerror})") from exc
    return final


def _remove_tree(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        # rename first, so a crash half-way through the removal leaves no half-folder in place
        doomed = path.with_name(f"{path.name}.deleting.{os.getpid()}")
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
