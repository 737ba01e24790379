"""Precomputed latents: a table from stimulus keys to latent vectors.

Keys are stimulus file names relative to ``stimuli/`` (``sub01/run13/F0559.jpg``), bare
file names (``F0559.jpg``) or content hashes (SHA-1 or SHA-256 hex). Readers:

* TSV / CSV — first column the key (``stim_file``, ``sha1``, ``sha256`` or any name), then
  the latent columns: ``z1..zD``, ``z0..z(D-1)`` or zero-padded (``z000``, ...) when present
  (in numeric order; any other column is ignored), else every other numeric column (text
  columns and columns named like hashes or notes are ignored);
* NPZ — arrays ``keys`` (N,) and ``latents`` (N, D);
* MATLAB ``.mat`` — as written by the paper's ``VAEGAN_image2latent.py``: one file per
  image, ``<image stem>_z.mat``, holding ``latent`` of shape (1, D); a folder of such
  files is read as one table (keys: paths relative to the folder, ``_z.mat`` removed).
  A single ``.mat`` with ``latent``/``latents`` (N, D) and a ``keys`` (or ``names``,
  ``stim_file``, ``files``) variable is accepted too.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..errors import CantCreateError, DataError, NoInputError
from ..images import content_hash
from .base import SHARED_FILE_MODE

log = logging.getLogger("bids_facedecode.latents")

_HASH_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: columns never taken for latents when a table has no z columns
_NOT_LATENT = {"sha1", "sha256", "hash", "md5", "stim_file", "stim", "file", "filename", "path",
               "name", "note", "notes", "comment", "comments"}
_Z_COL = re.compile(r"^z(\d+)$", re.IGNORECASE)
_MAT_KEY_VARS = ("keys", "names", "stim_file", "stim_files", "files", "filenames")
_MAT_LATENT_VARS = ("latent", "latents", "z")


def _norm_path(key: str) -> str:
    """Normalise a relative stimulus path: POSIX separators, no ``./`` or ``stimuli/``."""
    p = str(key).strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    if p.startswith("stimuli/"):
        p = p[len("stimuli/"):]
    return p


def _strip_suffix(path: str) -> str:
    pp = PurePosixPath(path)
    return str(pp.with_suffix("")) if pp.suffix else path


@dataclass
class LatentTable:
    """Latent vectors keyed by stimulus.

    Attributes
    ----------
    keys : list of str, length N
    latents : ndarray of shape (N, D), float32
    source : Path
        The file (or folder) the table was read from, for messages.
    """

    keys: list[str]
    latents: np.ndarray
    source: Path = field(default_factory=lambda: Path("<memory>"))

    def __post_init__(self) -> None:
        self.keys = [_norm_path(k) for k in self.keys]
        self.latents = np.asarray(self.latents, dtype=np.float32)
        if self.latents.ndim != 2 or len(self.keys) != len(self.latents):
            raise DataError(f"{self.source}: expected one latent row per key, got "
                            f"{len(self.keys)} keys and latents of shape {self.latents.shape}")
        if not np.all(np.isfinite(self.latents)):
            raise DataError(f"{self.source}: latents contain NaN or infinite values")
        self._index: dict[str, dict[str, list[int]]] = {}

    @property
    def latent_dim(self) -> int:
        """``D``."""
        return int(self.latents.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    def _levels(self) -> dict[str, dict[str, list[int]]]:
        if not self._index:
            levels: dict[str, dict[str, list[int]]] = {
                "hash": defaultdict(list), "path": defaultdict(list), "path_stem": defaultdict(list),
                "name": defaultdict(list), "name_stem": defaultdict(list)}
            for i, k in enumerate(self.keys):
                if _HASH_RE.match(k.lower()):
                    levels["hash"][k.lower()].append(i)
                levels["path"][k].append(i)
                levels["path_stem"][_strip_suffix(k)].append(i)
                name = PurePosixPath(k).name
                levels["name"][name].append(i)
                levels["name_stem"][_strip_suffix(name)].append(i)
            self._index = levels
        return self._index

    @property
    def has_sha256_keys(self) -> bool:
        """True when some keys are SHA-256 hex digests."""
        return any(_SHA256_RE.match(k.lower()) for k in self.keys)

    def lookup(self, stim_files: list[str], hashes: list[str] | None = None,
               files: list[str | Path] | None = None) -> np.ndarray:
        """Latents of stimuli, matched by content hash, then relative path, then file name.

        Parameters
        ----------
        stim_files : list of str, length N
            Paths relative to ``stimuli/``.
        hashes : list of str, length N, optional
            SHA-1 content hashes of the same files.
        files : list of path-like, length N, optional
            The files themselves: their SHA-256 is computed when the table has SHA-256 keys.

        Returns
        -------
        latents : ndarray of shape (N, D), float32

        Raises
        ------
        DataError
            Some stimuli are not in the table (the first few are named).
        """
        if hashes is not None and len(hashes) != len(stim_files):
            raise ValueError("'hashes' must have one entry per stimulus file")
        if files is not None and len(files) != len(stim_files):
            raise ValueError("'files' must have one entry per stimulus file")
        sha256 = ([content_hash(f, "sha256") for f in files] if files is not None and self.has_sha256_keys
                  else [""] * len(stim_files))
        lv = self._levels()
        rows = np.empty(len(stim_files), dtype=np.int64)
        missing: list[str] = []
        for n, stim in enumerate(stim_files):
            path = _norm_path(stim)
            name = PurePosixPath(path).name
            candidates = [("hash", (hashes[n] if hashes is not None else "").lower()),
                          ("hash", sha256[n]),
                          ("path", path), ("path_stem", _strip_suffix(path)),
                          ("name", name), ("name_stem", _strip_suffix(name))]
            for level, key in candidates:
                hits = lv[level].get(key) if key else None
                if hits:
                    if len(hits) > 1 and not np.allclose(self.latents[hits],
                                                         self.latents[hits[0]]):
                        log.warning("%s: '%s' matches %d rows with different latents by %s; "
                                    "using the first (%s)", self.source, stim, len(hits),
                                    level.replace("_", " "), self.keys[hits[0]])
                    rows[n] = hits[0]
                    break
            else:
                missing.append(stim)
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise DataError(f"{self.source}: no latents for {len(missing)} of {len(stim_files)} "
                            f"stimuli: {shown}")
        return self.latents[rows]


# ------------------------------------------------------------------------ readers
def load_latent_table(path: str | Path) -> LatentTable:
    """Read a table of precomputed latents (TSV, CSV, NPZ, MAT, or a folder of ``.mat``).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    LatentTable
    """
    path = Path(path)
    if not path.exists():
        raise NoInputError(f"{path}: latent table not found")
    if path.is_dir():
        return _read_mat_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv", ".txt"):
        return _read_text(path)
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".mat":
        keys, z = _read_mat(path)
        return LatentTable(keys, z, path)
    raise DataError(f"{path}: unknown latent table format '{suffix}' "
                    "(use .tsv, .csv, .npz, .mat or a folder of .mat files)")


def _read_text(path: Path) -> LatentTable:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        df = pd.read_csv(path, sep=sep, dtype={0: str}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse latent table ({exc})") from exc
    if df.shape[1] < 2 or len(df) == 0:
        raise DataError(f"{path}: a latent table needs a key column and at least one latent "
                        "column and one row")
    key_col = df.columns[0]
    rest = [c for c in df.columns[1:]]
    zcols = sorted((c for c in rest if _Z_COL.match(str(c))), key=lambda c: int(str(c)[1:]))
    if zcols:
        numbers = [int(str(c)[1:]) for c in zcols]
        first = numbers[0]
        if first not in (0, 1) or numbers != list(range(first, first + len(numbers))):
            raise DataError(f"{path}: latent columns must run z1..zD or z0..z(D-1) without gaps "
                            f"or repeats, got {', '.join(map(str, zcols[:6]))}...")
        cols = zcols
    else:
        cols = [c for c in rest if str(c).strip().lower() not in _NOT_LATENT
                and not pd.to_numeric(df[c], errors="coerce").isna().all()]
        if not cols:
            raise DataError(f"{path}: no latent columns (z1..zD, or numeric columns)")
    ignored = [c for c in rest if c not in cols]
    if ignored:
        log.info("%s: columns %s are not latents (ignored)", path, ", ".join(map(str, ignored)))
    values = df[cols].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        col = next(c for c in cols if pd.isna(values.iloc[row][c]))
        raise DataError(f"{path}: non-numeric or missing latent value in column '{col}' "
                        f"(data row {row + 1}, key '{df[key_col].iloc[row]}')")
    keys = df[key_col].astype(str).tolist()
    _check_duplicates(keys, values.to_numpy(np.float32), path)
    return LatentTable(keys, values.to_numpy(np.float32), path)


def _read_npz(path: Path) -> LatentTable:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "keys" not in f or "latents" not in f:
                raise DataError(f"{path}: NPZ must hold arrays 'keys' and 'latents', found "
                                f"{', '.join(f.files)}")
            keys, z = f["keys"], f["latents"]
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read NPZ ({exc})") from exc
    if z.ndim != 2 or keys.ndim != 1 or len(keys) != len(z):
        raise DataError(f"{path}: 'latents' must be (N, D) with N = len(keys); got keys "
                        f"{keys.shape}, latents {z.shape}")
    if not np.issubdtype(z.dtype, np.number):
        raise DataError(f"{path}: 'latents' is not numeric (dtype {z.dtype})")
    keys = [str(k) for k in keys]
    _check_duplicates(keys, z.astype(np.float32), path)
    return LatentTable(keys, z, path)


def _mat_strings(value: np.ndarray) -> list[str]:
    """Key strings from a MATLAB char matrix or cell array as scipy reads them."""
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return [str(s).strip() for s in arr.ravel()]
    if arr.dtype == object:
        return [str(np.asarray(s).ravel()[0]).strip() for s in arr.ravel()]
    raise ValueError(f"keys variable has dtype {arr.dtype}")


def _read_mat(path: Path) -> tuple[list[str], np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (OSError, ValueError, NotImplementedError, TypeError) as exc:
        raise DataError(f"{path}: cannot read MATLAB file ({exc})") from exc
    var = next((v for v in _MAT_LATENT_VARS if v in mat), None)
    if var is None:
        found = ", ".join(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no 'latent' variable (as written by VAEGAN_image2latent.py); "
                        f"found {found or 'nothing'}")
    z = np.asarray(mat[var])
    if not np.issubdtype(z.dtype, np.number) or z.dtype.kind == "c":
        raise DataError(f"{path}: '{var}' is not a real numeric array (dtype {z.dtype})")
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2:
        raise DataError(f"{path}: '{var}' must be (1, D) or (N, D), got shape {z.shape}")
    key_var = next((v for v in _MAT_KEY_VARS if v in mat), None)
    if key_var is not None:
        try:
            keys = _mat_strings(mat[key_var])
        except (ValueError, IndexError) as exc:
            raise DataError(f"{path}: cannot read '{key_var}' as strings ({exc})") from exc
        if len(keys) != len(z):
            raise DataError(f"{path}: '{key_var}' has {len(keys)} entries, '{var}' {len(z)} rows")
    elif len(z) == 1:
        stem = path.name[: -len(".mat")]
        keys = [stem[:-2] if stem.endswith("_z") else stem]
    else:
        raise DataError(f"{path}: '{var}' has {len(z)} rows but the file has no keys variable "
                        f"({', '.join(_MAT_KEY_VARS)})")
    return keys, z.astype(np.float32)


def _read_mat_folder(folder: Path) -> LatentTable:
    files = sorted(folder.rglob("*.mat"))
    if not files:
        raise DataError(f"{folder}: no .mat latent files in this folder")
    keys: list[str] = []
    rows: list[np.ndarray] = []
    dims = set()
    for f in files:
        k, z = _read_mat(f)
        rel = f.parent.relative_to(folder)
        keys += [str(PurePosixPath(*rel.parts, kk)) if len(z) == 1 else kk for kk in k]
        rows.append(z)
        dims.add(z.shape[1])
    if len(dims) > 1:
        raise DataError(f"{folder}: .mat files hold latents of different lengths {sorted(dims)}")
    return LatentTable(keys, np.concatenate(rows), folder)


def _check_duplicates(keys: list[str], z: np.ndarray, path: Path) -> None:
    seen: dict[str, int] = {}
    for i, k in enumerate(keys):
        j = seen.setdefault(_norm_path(k), i)
        if j != i and not np.allclose(z[i], z[j]):
            raise DataError(f"{path}: key '{k}' appears twice with different latents")


# ------------------------------------------------------------------------ writer
def write_latent_table(path: str | Path, keys: list[str], latents: np.ndarray,
                       key_column: str = "stim_file") -> None:
    """Write latents to a TSV (``key_column, z1..zD``) or NPZ (``keys``, ``latents``).

    Parameters
    ----------
    path : path-like
        ``.tsv`` or ``.npz`` (chosen by suffix). Written atomically.
    keys : list of str, length N
    latents : ndarray of shape (N, D)
    key_column : str
        Header of the TSV key column (``stim_file`` or ``sha1``).
    """
    path = Path(path)
    z = np.asarray(latents, dtype=np.float32)
    if z.ndim != 2 or len(keys) != len(z):
        raise ValueError(f"'latents' must be (N, D) with N = len(keys). Got {z.shape} "
                         f"for {len(keys)} keys.")
    suffix = path.suffix.lower()
    if suffix not in (".tsv", ".npz"):
        raise ValueError(f"'path' must end in .tsv or .npz. Got {path.name!r}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        try:
            if suffix == ".npz":
                np.savez(tmp, keys=np.asarray(keys, dtype=str), latents=z)
            else:
                df = pd.DataFrame(z, columns=[f"z{i}" for i in range(1, z.shape[1] + 1)])
                df.insert(0, key_column, list(keys))
                df.to_csv(tmp, sep="\t", index=False, float_format="%.9g")
            os.chmod(tmp, SHARED_FILE_MODE)  # mkstemp makes it private (0600)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise CantCreateError(f"{path}: cannot write latent table ({exc})") from exc
