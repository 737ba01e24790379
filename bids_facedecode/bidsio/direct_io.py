"""``.npy`` files written and read around the page cache (``O_DIRECT``), for the masked-run cache.

A cold participant run writes its whole masked data to the work dir once (gigabytes for a real
subject). Through the page cache every written byte first takes a fresh cache page; on a small
or virtualised machine that allocation (reclaiming other cached files to make room) costs more
CPU time than the disk itself (``benchmarks/README.md``, masked-run cache by direct I/O,
measures both). Reads go the same way, into the caller's buffer.

The files are ordinary ``.npy`` (format 1.0), readable by ``numpy.load``: only the header is
padded to :data:`ALIGN` bytes, so that the data start on a block boundary. Where ``O_DIRECT``
is missing (macOS, some file systems) or refused, the same bytes go through ordinary I/O.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import struct
from pathlib import Path

import numpy as np

# block size every O_DIRECT transfer is aligned to (buffer address, file offset, length)
ALIGN = 4096
_MAGIC = b"\x93NUMPY\x01\x00"
# most header bytes read back (numpy's own limit for headers it parses without a flag)
_HEADER_MAX = 10_000
_O_DIRECT = getattr(os, "O_DIRECT", 0)
# errors meaning "this file system or buffer cannot do direct I/O": fall back to buffered I/O
_NO_DIRECT = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


def aligned_buffer(nbytes: int) -> memoryview:
    """A writable, zero-filled buffer of ``nbytes`` starting on a page boundary (anonymous mmap)."""
    return memoryview(mmap.mmap(-1, max(int(nbytes), 1)))[: int(nbytes)]


def _round_up(n: int) -> int:
    return -(-int(n) // ALIGN) * ALIGN


def _header(arr: np.ndarray) -> bytes:
    """An ``.npy`` 1.0 header of exactly :data:`ALIGN` bytes for a C-ordered ``arr``."""
    d = (f"{{'descr': {np.lib.format.dtype_to_descr(arr.dtype)!r}, 'fortran_order': False, "
         f"'shape': {tuple(int(s) for s in arr.shape)!r}, }}")
    room = ALIGN - len(_MAGIC) - 2
    if len(d) + 1 > room:
        raise ValueError(f"npy header of {len(d)} bytes does not fit in {ALIGN}")
    return _MAGIC + struct.pack("<H", room) + (d.ljust(room - 1) + "\n").encode("latin1")


def _address(view: memoryview) -> int:
    return np.frombuffer(view, np.uint8).ctypes.data if len(view) else 0


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def write_npy(path: Path, arr: np.ndarray) -> bool:
    """Write ``arr`` as ``.npy`` to ``path``, its data by direct I/O where possible.

    Parameters
    ----------
    path : Path
        Created or truncated.
    arr : ndarray
        Written in C order (copied first when it is not C-contiguous). Direct I/O needs its
        data to start on an :data:`ALIGN` boundary (e.g. :func:`aligned_buffer`); the last
        partial block goes through ordinary I/O.

    Returns
    -------
    bool
        Whether the data went around the page cache.
    """
    arr = np.ascontiguousarray(arr)
    head = _header(arr)
    data = memoryview(arr.reshape(-1)).cast("B") if arr.size else memoryview(b"")
    body = len(data) // ALIGN * ALIGN
    direct = bool(_O_DIRECT) and body > 0 and _address(data) % ALIGN == 0
    if direct:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno not in _NO_DIRECT:
                raise
            direct = False
        else:
            try:
                block = aligned_buffer(ALIGN)
                block[:] = head
                _pwrite_all(fd, block, 0)
                _pwrite_all(fd, data[:body], ALIGN)
            except OSError as exc:
                if exc.errno not in _NO_DIRECT:
                    raise
                direct = False
            finally:
                os.close(fd)
    if not direct:
        with open(path, "wb") as fh:
            fh.write(head)
            fh.write(data)
        return False
    if body < len(data):
        with open(path, "r+b") as fh:
            fh.seek(ALIGN + body)
            fh.write(data[body:])
    return True


def read_npy(path: Path, buffer_for) -> np.ndarray:
    """Read a C-ordered ``.npy`` file into a caller's buffer, by direct I/O where possible.

    Parameters
    ----------
    path : Path
    buffer_for : callable
        ``buffer_for(nbytes)`` returns a writable buffer of at least ``nbytes`` (page-aligned
        for direct I/O, e.g. from :func:`aligned_buffer`); the result views it.

    Returns
    -------
    ndarray
        A view of the buffer, shaped and typed as the file says.

    Raises
    ------
    ValueError
        When the file is not a C-ordered ``.npy`` or is shorter than its header says.
    """
    size = os.stat(path).st_size
    buf = memoryview(buffer_for(_round_up(size)))
    got = -1
    if _O_DIRECT and _address(buf) % ALIGN == 0:
        try:
            fd = os.open(path, os.O_RDONLY | _O_DIRECT)
        except OSError as exc:
            if exc.errno not in _NO_DIRECT:
                raise
        else:
            try:
                got = 0
                while got < size:
                    n = os.preadv(fd, [buf[got:_round_up(size)]], got)
                    if n == 0:
                        break
                    got += n
            except OSError as exc:
                if exc.errno not in _NO_DIRECT:
                    raise
                got = -1
            finally:
                os.close(fd)
    if got < 0:
        with open(path, "rb") as fh:
            got = fh.readinto(buf[:size])
    return _parse(path, buf, min(got, size))


def _parse(path: Path, buf: memoryview, size: int) -> np.ndarray:
    """View the data of the ``.npy`` image in ``buf[:size]``, its header read by numpy's own
    reader (``numpy.lib.format``)."""
    fmt = np.lib.format
    head = io.BytesIO(bytes(buf[: min(size, _HEADER_MAX)]))
    try:
        version = fmt.read_magic(head)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(head, max_header_size=_HEADER_MAX)
    except ValueError as exc:
        raise ValueError(f"{path}: not an .npy file ({exc})") from exc
    if fortran or dtype.hasobject:
        raise ValueError(f"{path}: only C-ordered numeric .npy files are read here")
    offset = head.tell()
    count = int(np.prod(shape, dtype=np.int64))
    if offset + count * dtype.itemsize > size:
        raise ValueError(f"{path}: truncated ({size} bytes, header says "
                         f"{offset + count * dtype.itemsize})")
    return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
