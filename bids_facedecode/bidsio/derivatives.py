"""Write BIDS derivatives: file names from entities, atomic writes, dataset_description.json.

Every file is written to a hidden temporary name in its final folder and renamed into place
(``os.replace`` is atomic on POSIX), so a crash never leaves a half-written file under a
name that a later run or the group level would read as a result.
"""

from __future__ import annotations

import io
import json
import os
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
