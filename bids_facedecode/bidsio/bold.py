"""Read BOLD runs: NIfTI headers, one-pass gzip decompression, masking in the stored dtype.

The fast path reads a single-file NIfTI (``.nii`` or ``.nii.gz``) in one go: the whole file is
decompressed at once (ISA-L's ``igzip`` when the optional ``isal`` package is installed, else
``zlib``), viewed as a ``(T, X·Y·Z)`` array of the stored dtype without a copy, masked by one
gather and only then converted to float32 and scaled. nibabel's own reader (``get_unscaled``
through indexed_gzip) is the fallback for anything else. A run is never read as float64.
Masked runs are cached by :mod:`bids_facedecode.bidsio.run_cache`; the EPI brain mask of a raw
run is computed in :mod:`bids_facedecode.bidsio.masks`. ``benchmarks/README.md`` (reading)
measures the choices made here.
"""

from __future__ import annotations

import gzip
import io
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ..errors import DataError
from .direct_io import aligned_buffer

try:  # optional: ISA-L inflate, faster than zlib
    from isal import isal_zlib as ZLIB

    GZIP_BACKEND = "isal"
except ImportError:  # pragma: no cover - depends on the environment
    ZLIB = zlib
    GZIP_BACKEND = "zlib"

# per reader thread: the decompressed file and the masked raw values of the last run read.
# Fresh large allocations for every run cost more in page faults than the copy itself.
_TLS = threading.local()


def thread_buffer(name: str, nbytes: int) -> memoryview:
    """This thread's page-aligned buffer ``name`` of at least ``nbytes`` (grown when smaller).

    Valid until the thread asks for ``name`` again; page-aligned, so direct I/O can use it.
    """
    buf = getattr(_TLS, name, None)
    if buf is None or len(buf) < nbytes:
        buf = aligned_buffer(int(nbytes * 1.05) + 4096)
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

    ``nibabel.load`` on a gzipped image prepares random access to the whole file; indexing a
    participant's runs only needs their headers. Other formats go through ``nibabel.load``.

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
    A gzip reader's ``readinto`` makes a temporary as large as the request (a whole run) and
    copies it; a decompressor object (ISA-L when installed, else zlib) fed pieces keeps its
    temporaries small, which saves the page faults of a fresh run-sized block per run. The
    output pieces are small enough for the allocator to reuse (larger pieces are mapped and
    page-faulted afresh on every step). Concatenated gzip members are read one after the other.
    """
    n, cap = 0, len(buf)
    with open(path, "rb") as fh:
        d = ZLIB.decompressobj(wbits=31)
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
                    d = ZLIB.decompressobj(wbits=31)
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
        out = np.frombuffer(thread_buffer("masked", T * idx.size * self.data.itemsize),
                            dtype=self.data.dtype).reshape(T, idx.size)
        # mode="clip": the indices are in range by construction, and the default mode ("raise")
        # writes to a fresh temporary as large as ``out``, then copies it (the page faults of
        # a new block on every run)
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
                buf = thread_buffer("file", need)
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
            # torch's conversion is faster than numpy's casting copy here (bitwise equal)
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
    raw, slope, inter = read_masked_raw(bold, mask)
    return to_float32(raw, slope, inter, bold, out)


def read_masked_raw(bold: Path, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Masked raw values ``(T, V)`` in the stored dtype, in the thread's buffer (valid until the
    thread's next read), and the scaling ``(slope, inter)``."""
    run = read_raw_run(bold)
    if run.shape != mask.shape:
        raise DataError(f"{bold}: grid {run.shape} does not match the brain mask {mask.shape}")
    return run.masked(mask, reuse=True), run.slope, run.inter
