"""The on-disk cache of masked runs (``<work>/cache/sub-XX/``): read once, never decompressed again.

Each masked run is kept in its stored dtype (int16 for scanner data: half the size of float32 and
exact) with its scaling and CRC-32 in a small JSON file (checked on every hit), keyed by the
file's identity and the mask; the brain mask of a raw run is cached under the run's identity
(:func:`bids_facedecode.bidsio.masks.compute_brain_mask`), so a rerun or a second latent space
decompresses nothing. Cached runs are written and read by direct I/O where the file system
allows it (:mod:`bids_facedecode.bidsio.direct_io`): a real subject's masked data would
otherwise push other files out of the page cache, at a CPU cost larger than the disk's. A cache
that cannot be written costs a warning, not the analysis: the results do not depend on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from .bold import ZLIB, load_masked_run, read_masked_raw, thread_buffer, to_float32
from .direct_io import read_npy, write_npy

LOG = logging.getLogger(__name__)


def file_key(bold: Path) -> str:
    """Identity of a file: resolved path, size and modification time (SHA-1 prefix)."""
    st = bold.stat()
    h = hashlib.sha1()
    h.update(str(bold.resolve()).encode())
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def cache_key(bold: Path, mask: np.ndarray) -> str:
    """Key of a masked run in the cache: file identity (path, size, mtime) and the mask."""
    h = hashlib.sha1()
    h.update(file_key(bold).encode())
    h.update(np.packbits(mask).tobytes())
    h.update(str(mask.shape).encode())
    return h.hexdigest()[:20]


_CACHE_WARNED: set[tuple[str, str]] = set()
_CACHE_LOCK = threading.Lock()


def cache_write_failed(cache_dir: Path, exc: OSError, what: str, consequence: str,
                       *partial: Path) -> None:
    """A cache write failed (full disk, read-only or unusable work dir): remove what it left,
    warn once per cache and folder and go on without it (the results do not depend on a cache).

    Parameters
    ----------
    cache_dir : Path
    exc : OSError
    what, consequence : str
        Named in the warning: ``cannot write the {what} in DIR (...); going on without it, so
        {consequence}``.
    *partial : Path
        Files the failed write may have left.
    """
    for path in partial:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
    with _CACHE_LOCK:  # once per cache (run cache, latent cache) and folder
        first = (what, str(cache_dir)) not in _CACHE_WARNED
        _CACHE_WARNED.add((what, str(cache_dir)))
    if first:
        LOG.warning("cannot write the %s in %s (%s); going on without it, so %s (choose another "
                    "work dir with -w)", what, cache_dir, exc.strerror or exc, consequence)


def run_cache_failed(cache_dir: Path, exc: OSError, *partial: Path) -> None:
    """:func:`cache_write_failed` of the run cache."""
    cache_write_failed(cache_dir, exc, "run cache", "a rerun will read and decompress the runs "
                       "again", *partial)


def cache_store(cache_dir: Path, key: str, bold: Path, raw: np.ndarray,
                slope: float, inter: float) -> None:
    """Write a masked run (stored dtype), its scaling and its CRC-32; the ``.npy`` appears last,
    atomically.

    ``key`` is :func:`cache_key` of the run and its mask. A failed write leaves nothing behind
    and is only warned about (see :func:`run_cache_failed`).
    """
    target = cache_dir / f"{key}.npy"
    meta = cache_dir / f"{key}.json"
    tmp_meta = meta.with_name(f".tmp{os.getpid()}-{threading.get_ident()}-{meta.name}")
    tmp = cache_dir / f".tmp{os.getpid()}-{threading.get_ident()}-{key}.npy"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp_meta.write_text(json.dumps({"slope": slope, "inter": inter, "source": str(bold),
                                        "crc32": _crc32(raw)}))
        os.replace(tmp_meta, meta)
        write_npy(tmp, raw)  # around the page cache where possible (see bidsio.direct_io)
        os.replace(tmp, target)
    except OSError as exc:
        run_cache_failed(cache_dir, exc, tmp_meta, tmp)


def cache_load(cache_dir: Path, key: str,
               n_voxels: int) -> tuple[np.ndarray, float, float] | None:
    """``(raw, slope, inter)`` of the cache entry ``key`` (:func:`cache_key`), or None."""
    target, meta = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if not (target.is_file() and meta.is_file()):
        return None
    try:
        scale = json.loads(meta.read_text())
        if "crc32" not in scale:  # written by an older version: replaced without a warning
            LOG.debug("cache entry %s has no checksum; reading the run again", target)
            return None
        # into the thread's buffer (valid until its next read), around the page cache
        raw = read_npy(target, lambda n: thread_buffer("cache", n))
        if raw.ndim != 2 or raw.shape[1] != n_voxels:
            raise ValueError(f"shape {raw.shape}")
        if _crc32(raw) != int(scale["crc32"]):  # damaged on disk
            raise ValueError("checksum")
        return raw, float(scale["slope"]), float(scale["inter"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("Discarding unreadable cache file %s (%s); reading the run again", target, exc)
        return None


def _crc32(raw: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order)."""
    return ZLIB.crc32(memoryview(np.ascontiguousarray(raw)).cast("B")) & 0xFFFFFFFF


def load_masked_run_cached(bold: Path, mask: np.ndarray, cache_dir: Path | None,
                           out: np.ndarray | None = None) -> np.ndarray:
    """:func:`load_masked_run` through the on-disk cache (read once, then never decompressed).

    Parameters
    ----------
    bold : Path
    mask : ndarray of bool, shape (X, Y, Z)
    cache_dir : Path or None
        No caching when None.
    out : ndarray of float32, shape (T_max, V), optional
        Buffer written in place (see :func:`to_float32`).

    Returns
    -------
    Y : ndarray of shape (T, V), float32, identical with and without a cache hit.
    """
    if cache_dir is None:
        return load_masked_run(bold, mask, out)
    key = cache_key(bold, mask)  # hashed once for the lookup and, on a miss, the store
    hit = cache_load(cache_dir, key, int(mask.sum()))
    if hit is None:
        raw, slope, inter = read_masked_raw(bold, mask)
        cache_store(cache_dir, key, bold, raw, slope, inter)
    else:
        raw, slope, inter = hit
    return to_float32(raw, slope, inter, bold, out)
