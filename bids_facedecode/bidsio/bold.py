"""Read BOLD runs: brain mask, masked float32 time series, on-disk cache of masked runs.

The fast path reads a single-file NIfTI (``.nii`` or ``.nii.gz``) in one go: the whole file is
decompressed at once (ISA-L's ``igzip`` when the optional ``isal`` package is installed, else
``zlib``, ~1.7x slower), viewed as a ``(T, X·Y·Z)`` array of the stored dtype without a copy,
masked by one gather and only then converted to float32 and scaled. nibabel's own reader
(``get_unscaled`` through indexed_gzip) is the fallback for anything else. A run is never read
as float64.

The cache (``<work>/cache/sub-XX/``) holds each masked run in its stored dtype (int16 for
scanner data: half the size of float32 and exact) with its scaling and CRC-32 in a small JSON file
(checked on every hit), keyed by
the file's identity and the mask; the brain mask itself is cached under the first run's identity,
so a rerun or a second latent space decompresses nothing. Cached runs are written and read by
direct I/O where the file system allows it (:mod:`bids_facedecode.bidsio.direct_io`): a real
subject's ~4 GB would otherwise push other files out of the page cache, at a CPU cost larger
than the disk's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ..errors import DataError
from .direct_io import aligned_buffer, read_npy, write_npy

LOG = logging.getLogger(__name__)

try:  # optional: ISA-L inflate, ~1.7x faster than zlib here
    from isal import isal_zlib as _zlib

    GZIP_BACKEND = "isal"
except ImportError:  # pragma: no cover - depends on the environment
    _zlib = zlib
    GZIP_BACKEND = "zlib"

# per reader thread: the decompressed file and the masked raw values of the last run read.
# Fresh 100-MB allocations for every run cost more in page faults than the copy itself.
_TLS = threading.local()


def _thread_buffer(name: str, nbytes: int) -> memoryview:
    buf = getattr(_TLS, name, None)
    if buf is None or len(buf) < nbytes:
        buf = aligned_buffer(int(nbytes * 1.05) + 4096)  # page-aligned: direct I/O can use it
        setattr(_TLS, name, buf)
    return buf[:nbytes]


def release_thread_buffers() -> None:
    """Drop this thread's read buffers (arrays still viewing them keep them alive)."""
    _TLS.__dict__.clear()


def load_img(path: Path):
    """nibabel image, with a ``DataError`` naming the file when it cannot be read."""
    try:
        return nib.load(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot read NIfTI ({exc})") from exc


def read_header(path: Path):
    """The header of a NIfTI-1/2 file (``.nii`` or ``.nii.gz``), reading only its first bytes.

    ``nibabel.load`` on a gzipped image costs ~30 ms (its gzip reader prepares random access);
    a participant's 100 runs are indexed in ~10 ms this way. Other formats go through
    ``nibabel.load``.

    Parameters
    ----------
    path : Path

    Returns
    -------
    nibabel.Nifti1Header or nibabel.Nifti2Header (or the header of whatever nibabel reads)

    Raises
    ------
    DataError
        Naming the file when it cannot be read.
    """
    name = str(path)
    try:
        if name.endswith((".nii", ".nii.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(name, "rb") as f:
                raw = f.read(540)
            for klass, size in ((nib.Nifti1Header, 348), (nib.Nifti2Header, 540)):
                if len(raw) >= size and size in (int.from_bytes(raw[:4], "little"),
                                                 int.from_bytes(raw[:4], "big")):
                    return klass.from_fileobj(io.BytesIO(raw[:size]), check=True)
        return nib.load(name).header
    except Exception as exc:
        raise DataError(f"{path}: cannot read NIfTI header ({exc})") from exc


def read_volume_data(img, path: Path) -> np.ndarray:
    """All voxels of a 4D image as float32 ``(X, Y, Z, T)`` without a float64 copy."""
    try:
        proxy = img.dataobj
        if hasattr(proxy, "get_unscaled"):
            raw = np.asanyarray(proxy.get_unscaled())
            slope, inter = _scaling(proxy)
            data = raw.astype(np.float32, copy=raw.dtype != np.float32)
            if slope != 1.0:
                data *= np.float32(slope)
            if inter != 0.0:
                data += np.float32(inter)
            return data
        return img.get_fdata(dtype=np.float32)
    except Exception as exc:
        raise DataError(f"{path}: cannot read image data ({exc})") from exc


def _scaling(proxy) -> tuple[float, float]:
    """``(slope, inter)`` of a nibabel array proxy; NIfTI's 'no scaling' values become (1, 0)."""
    return _clean_scaling(getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0))


def _clean_scaling(slope, inter) -> tuple[float, float]:
    """NIfTI scaling with its 'no scaling' values (None, NaN, a zero slope) as (1, 0)."""
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0.0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


# compressed bytes read, and most decompressed bytes produced, per step of gunzip_into
_GZ_IN, _GZ_OUT = 1 << 20, 1 << 18


def gunzip_into(path: Path, buf: memoryview) -> int:
    """Decompress a gzip file into ``buf`` (1 MB read, at most 256 kB written a step); bytes written.

    Stops when ``buf`` is full (the NIfTI data end there; trailing extensions are ignored),
    after decompressing to the end of the gzip member so that its CRC-32 is checked: a file
    corrupted on disk or in transfer raises instead of giving wrong values.
    A gzip reader's ``readinto`` makes a temporary as large as the request (~130 MB a run)
    and copies it; a decompressor object (ISA-L when installed, else zlib) fed pieces keeps
    its temporaries small, which saves the page faults of a fresh 130 MB block per run
    (~20 % of the reading time with two reader threads). The output pieces are small enough
    for the allocator to reuse (2-MB pieces were mapped and page-faulted afresh on every step:
    ~25 % more reading time on one thread). Concatenated gzip members are read one after the
    other.
    """
    n, cap = 0, len(buf)
    with open(path, "rb") as fh:
        d = _zlib.decompressobj(wbits=31)
        pending = fh.read(_GZ_IN)
        while pending:
            if n < cap:
                out = d.decompress(pending, min(_GZ_OUT, cap - n))
                buf[n : n + len(out)] = out
                n += len(out)
            else:  # past the data: decompressed only to reach (and check) the member's CRC
                d.decompress(pending, _GZ_OUT)
            if d.eof:  # end of a gzip member, its checksum verified: another may follow
                if n >= cap:
                    break
                pending = d.unused_data or fh.read(_GZ_IN)
                if pending:
                    d = _zlib.decompressobj(wbits=31)
            else:
                pending = d.unconsumed_tail or fh.read(_GZ_IN)
    if n >= cap and not d.eof:
        raise EOFError("the gzip stream ends before its checksum (truncated file)")
    return n


@dataclass
class RawRun:
    """One run as stored on disk, flattened: ``data[t, k]`` is voxel ``k`` (Fortran order).

    Attributes
    ----------
    data : ndarray of shape (T, X*Y*Z), the file's dtype (often int16), read-only view
        For gzip files, a view of the reading thread's buffer: valid until that thread
        reads its next run.
    shape : tuple (X, Y, Z)
    slope, inter : float
        ``value = data * slope + inter``.
    affine : ndarray (4, 4)
    """

    data: np.ndarray
    shape: tuple[int, int, int]
    slope: float
    inter: float
    affine: np.ndarray

    def mean_volume(self) -> np.ndarray:
        """Mean image over time, float32 ``(X, Y, Z)`` (float64 accumulation)."""
        m = self.data.mean(axis=0, dtype=np.float64) * self.slope + self.inter
        return m.astype(np.float32).reshape(self.shape, order="F")

    def masked(self, mask: np.ndarray, reuse: bool = False) -> np.ndarray:
        """Masked raw values ``(T, V)`` in the stored dtype, voxels in ``img[mask]`` order.

        With ``reuse``, the result is written into the thread's buffer (valid until the
        thread's next call) instead of a fresh array.
        """
        idx = mask_flat_index(mask)
        if not reuse:
            return np.take(self.data, idx, axis=1)
        T = self.data.shape[0]
        out = np.frombuffer(_thread_buffer("masked", T * idx.size * self.data.itemsize),
                            dtype=self.data.dtype).reshape(T, idx.size)
        # mode="clip": the indices are in range by construction, and the default mode ("raise")
        # writes to a fresh temporary as large as ``out``, then copies it (the page faults of
        # a new ~40 MB block on every run: ~10 % of a cold pass)
        return np.take(self.data, idx, axis=1, out=out, mode="clip")


def mask_flat_index(mask: np.ndarray) -> np.ndarray:
    """Fortran-order flat index of each mask voxel, listed in C order (as ``img[mask]``)."""
    return np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")


def read_raw_run(bold: Path) -> RawRun:
    """Read a 3D/4D single-file NIfTI at once (fast path; nibabel for anything else).

    Parameters
    ----------
    bold : Path
        ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    RawRun
    """
    header = read_header(bold)
    if (isinstance(header, (nib.Nifti1Header, nib.Nifti2Header))
            and str(bold).endswith((".nii", ".nii.gz"))
            and int(header.get_data_offset()) >= int(header.sizeof_hdr)):
        # single-file NIfTI: read the data block straight after the header (no nibabel image)
        shape = tuple(int(s) for s in header.get_data_shape())
        dtype, offset = np.dtype(header.get_data_dtype()), int(header.get_data_offset())
        slope, inter = _clean_scaling(*header.get_slope_inter())
        affine, img = header.get_best_affine(), None
    else:
        img = load_img(bold)
        shape = tuple(int(s) for s in img.shape)
        slope, inter = _scaling(img.dataobj)
        affine = img.affine
    if len(shape) == 3:
        shape = shape + (1,)
    if len(shape) != 4:
        raise DataError(f"{bold}: expected a 3D or 4D image, got shape {shape[:4]}")
    xyz, T = shape[:3], shape[3]
    nvox = int(np.prod(xyz))
    try:
        if img is None:
            count = nvox * T
            if str(bold).endswith(".gz"):
                need = offset + count * dtype.itemsize
                buf = _thread_buffer("file", need)
                got = gunzip_into(bold, buf)
                if got < need:
                    raise DataError(f"{bold}: file is truncated ({got} of {need} bytes)")
                flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
            else:
                flat = np.fromfile(bold, dtype=dtype, count=count, offset=offset)
                if flat.size < count:
                    raise DataError(f"{bold}: file is truncated ({flat.size} of {count} values)")
            data = flat.reshape(T, nvox)
        else:
            proxy = img.dataobj
            raw = np.asanyarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") \
                else img.get_fdata(dtype=np.float32)
            data = raw.reshape(nvox, T, order="F").T
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, Exception) as exc:
        raise DataError(f"{bold}: cannot read image data ({exc})") from exc
    return RawRun(data, xyz, slope, inter, affine)


def to_float32(raw: np.ndarray, slope: float, inter: float, source: Path,
               out: np.ndarray | None = None) -> np.ndarray:
    """Scale masked raw values to float32 ``(T, V)``; raise ``DataError`` on NaN/inf.

    Parameters
    ----------
    raw : ndarray (T, V), any numeric dtype
    slope, inter : float
    source : Path
        Named in errors.
    out : ndarray of float32, shape (T_max >= T, V), optional
        Written in its first ``T`` rows (and that view returned); a fresh array otherwise.
    """
    if out is None:
        Y = raw.astype(np.float32, order="C")  # always a fresh, writable array
    else:
        if out.dtype != np.float32 or out.shape[0] < raw.shape[0] or out.shape[1:] != raw.shape[1:]:
            raise DataError(f"{source}: output buffer {out.shape} cannot hold {raw.shape}")
        Y = out[: raw.shape[0]]
        if raw.dtype.isnative and raw.dtype.kind in "iuf":
            # torch's conversion is ~15x faster than numpy's casting copy here
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a read-only cache memmap is only read
                torch.from_numpy(Y).copy_(torch.from_numpy(np.asarray(raw)))
        else:
            np.copyto(Y, raw, casting="unsafe")
    if slope != 1.0 or inter != 0.0:
        Yt = torch.from_numpy(Y)
        if slope != 1.0:
            Yt.mul_(float(np.float32(slope)))
        if inter != 0.0:
            Yt.add_(float(np.float32(inter)))
    if raw.dtype.kind not in "iub" or not (np.isfinite(slope) and np.isfinite(inter)):
        bad = ~np.isfinite(Y)
        if bad.any():
            raise DataError(f"{source}: {int(bad.sum())} NaN/inf value(s) inside the brain mask")
    return Y


def mask_from_mean(mean: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """Brain mask of a mean EPI image (nilearn ``compute_epi_mask``)."""
    from nilearn.masking import compute_epi_mask

    return compute_epi_mask(nib.Nifti1Image(mean, affine))


def compute_brain_mask(bold: Path, cache_dir: Path | None = None) -> nib.Nifti1Image:
    """Brain mask of a raw (native-space) run from its mean image (nilearn ``compute_epi_mask``).

    With a ``cache_dir`` the run is read only once: the mask is cached under the run's identity
    and the run's masked data are cached too, so the streamed pass finds them.

    Parameters
    ----------
    bold : Path
        4D NIfTI (usually the participant's first run).
    cache_dir : Path, optional

    Returns
    -------
    nibabel.Nifti1Image, int8 mask on the run's grid.
    """
    target = cache_dir / f"mask-{file_key(bold)}.nii.gz" if cache_dir is not None else None
    if target is not None and target.is_file():
        try:
            img = nib.load(str(target))
            img.get_fdata()  # validate now, not later
            return img
        except Exception:
            LOG.warning("Discarding unreadable cached mask %s", target)
    run = read_raw_run(bold)
    mask_img = mask_from_mean(run.mean_volume(), run.affine)
    if target is not None:
        mask = np.asarray(mask_img.dataobj).astype(bool)
        if mask.any():
            _cache_store(cache_dir, cache_key(bold, mask), bold, run.masked(mask), run.slope,
                         run.inter)
        tmp = target.with_name(f".tmp{os.getpid()}-{target.name}")
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            mask_img.to_filename(str(tmp))
            os.replace(tmp, target)
        except OSError as exc:
            _cache_failed(cache_dir, exc, tmp)
    del run
    release_thread_buffers()
    return mask_img


def load_masked_run(bold: Path, mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """One run's masked time series.

    Parameters
    ----------
    bold : Path
        4D NIfTI.
    mask : ndarray of bool, shape (X, Y, Z)

    out : ndarray of float32, shape (T_max, V), optional
        Buffer written in place (see :func:`to_float32`).

    Returns
    -------
    Y : ndarray of shape (T, V), float32
    """
    raw, slope, inter = _read_masked_raw(bold, mask)
    return to_float32(raw, slope, inter, bold, out)


def _read_masked_raw(bold: Path, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Masked raw values in the thread's buffer (valid until the thread's next read)."""
    run = read_raw_run(bold)
    if run.shape != mask.shape:
        raise DataError(f"{bold}: grid {run.shape} does not match the brain mask {mask.shape}")
    return run.masked(mask, reuse=True), run.slope, run.inter


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


def _cache_failed(cache_dir: Path, exc: OSError, *partial: Path) -> None:
    cache_write_failed(cache_dir, exc, "run cache", "a rerun will read and decompress the runs "
                       "again", *partial)


def _cache_store(cache_dir: Path, key: str, bold: Path, raw: np.ndarray,
                 slope: float, inter: float) -> None:
    """Write a masked run (stored dtype), its scaling and its CRC-32; the ``.npy`` appears last,
    atomically.

    ``key`` is :func:`cache_key` of the run and its mask. A failed write leaves nothing behind
    and is only warned about (see :func:`_cache_failed`).
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
        _cache_failed(cache_dir, exc, tmp_meta, tmp)


def _cache_load(cache_dir: Path, key: str, n_voxels: int):
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
        raw = read_npy(target, lambda n: _thread_buffer("cache", n))
        if raw.ndim != 2 or raw.shape[1] != n_voxels:
            raise ValueError(f"shape {raw.shape}")
        if _crc32(raw) != int(scale["crc32"]):  # damaged on disk (~1 ms a run with ISA-L)
            raise ValueError("checksum")
        return raw, float(scale["slope"]), float(scale["inter"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning("Discarding unreadable cache file %s (%s); reading the run again", target, exc)
        return None


def _crc32(raw: np.ndarray) -> int:
    """CRC-32 of an array's bytes (C order)."""
    return _zlib.crc32(memoryview(np.ascontiguousarray(raw)).cast("B")) & 0xFFFFFFFF


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
    hit = _cache_load(cache_dir, key, int(mask.sum()))
    if hit is None:
        raw, slope, inter = _read_masked_raw(bold, mask)
        _cache_store(cache_dir, key, bold, raw, slope, inter)
    else:
        raw, slope, inter = hit
    return to_float32(raw, slope, inter, bold, out)
