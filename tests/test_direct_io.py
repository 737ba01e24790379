""".npy files written and read around the page cache (bidsio.direct_io) against numpy's own
``np.save``/``np.load``, with and without O_DIRECT, and the errors of bad files."""

from __future__ import annotations

import numpy as np
import pytest

from bids_facedecode.bidsio import direct_io, run_cache


def _aligned(arr: np.ndarray) -> np.ndarray:
    """A copy of ``arr`` whose data start on a page boundary (as the reader threads' buffers)."""
    out = np.frombuffer(direct_io.aligned_buffer(arr.nbytes), arr.dtype, arr.size)
    out = out.reshape(arr.shape)
    out[...] = arr
    return out


def _buffers():
    """A ``buffer_for`` that records what it was asked for."""
    asked = []

    def buffer_for(n):
        asked.append(n)
        return direct_io.aligned_buffer(n)

    return buffer_for, asked


@pytest.mark.parametrize("shape,dtype", [
    ((200, 1531), np.int16),    # data not a multiple of the block: a buffered tail
    ((8, 1024), np.float32),    # exactly 8 blocks
    ((3, 5), np.uint8),         # less than a block: all buffered
    ((0, 7), np.float64),       # empty
    ((4097,), ">i4"),           # 1-D, big-endian
])
@pytest.mark.parametrize("direct", [True, False])
def test_write_read_round_trip_equals_numpy(tmp_path, rng, monkeypatch, shape, dtype, direct):
    if not direct:
        monkeypatch.setattr(direct_io, "_O_DIRECT", 0)  # as on a system without O_DIRECT
    arr = _aligned((rng.standard_normal(shape) * 1000).astype(dtype))
    path = tmp_path / "a.npy"
    used = direct_io.write_npy(path, arr)
    if not direct or arr.nbytes < direct_io.ALIGN:
        assert used is False
    # a valid .npy for numpy, also memory-mapped
    np.testing.assert_array_equal(np.load(path), arr)
    assert np.load(path).dtype == arr.dtype
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), arr)
    buffer_for, asked = _buffers()
    back = direct_io.read_npy(path, buffer_for)
    np.testing.assert_array_equal(back, arr)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert asked == [-(-path.stat().st_size // direct_io.ALIGN) * direct_io.ALIGN]


def test_unaligned_data_are_written_by_ordinary_io(tmp_path, rng):
    arr = rng.standard_normal(3 * direct_io.ALIGN)
    view = arr.view(np.uint8)[1 : 1 + 2 * direct_io.ALIGN]  # never page-aligned
    assert direct_io.write_npy(tmp_path / "u.npy", view) is False
    np.testing.assert_array_equal(np.load(tmp_path / "u.npy"), view)


def test_non_contiguous_arrays_are_written_in_c_order(tmp_path, rng):
    arr = rng.standard_normal((64, 96)).T
    direct_io.write_npy(tmp_path / "t.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), arr)


def test_reads_files_written_by_numpy(tmp_path, rng):
    arr = rng.integers(-30000, 30000, (33, 777)).astype(np.int16)
    np.save(tmp_path / "n.npy", arr)  # numpy's 128-byte header: data not block-aligned
    buffer_for, _ = _buffers()
    np.testing.assert_array_equal(direct_io.read_npy(tmp_path / "n.npy", buffer_for), arr)


def test_bad_files_raise_value_errors_naming_the_file(tmp_path, rng):
    buffer_for, _ = _buffers()
    arr = _aligned(rng.standard_normal((64, 200)))
    good = tmp_path / "g.npy"
    direct_io.write_npy(good, arr)
    cut = tmp_path / "cut.npy"
    cut.write_bytes(good.read_bytes()[:-8])
    with pytest.raises(ValueError, match="cut.npy: truncated"):
        direct_io.read_npy(cut, buffer_for)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match="junk.npy: not an .npy file"):
        direct_io.read_npy(junk, buffer_for)
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(rng.standard_normal((5, 6))))
    with pytest.raises(ValueError, match="f.npy: only C-ordered"):
        direct_io.read_npy(fortran, buffer_for)


def test_run_cache_is_written_around_the_page_cache(tmp_path, rng, monkeypatch):
    """The masked-run cache uses direct I/O for the reader threads' (page-aligned) buffers and
    reads its entries back identically either way."""
    brain = np.zeros((12, 13, 11), bool)
    brain[2:10, 3:11, 2:9] = True
    data = rng.normal(1000, 20, (12, 13, 11, 40))
    import nibabel as nib

    path = tmp_path / "b.nii.gz"
    img = nib.Nifti1Image(np.rint(data).astype(np.int16), np.eye(4))
    img.to_filename(path)
    calls = []
    write = direct_io.write_npy
    monkeypatch.setattr(run_cache, "write_npy", lambda p, a: calls.append(write(p, a)) or calls[-1])
    cache = tmp_path / "cache"
    miss = run_cache.load_masked_run_cached(path, brain, cache)
    (entry,) = cache.glob("*.npy")
    assert len(calls) == 1
    np.testing.assert_array_equal(np.load(entry), np.rint(data).astype(np.int16)[brain].T)
    hit = run_cache.load_masked_run_cached(path, brain, cache)
    np.testing.assert_array_equal(hit, miss)
    monkeypatch.setattr(direct_io, "_O_DIRECT", 0)
    np.testing.assert_array_equal(run_cache.load_masked_run_cached(path, brain, cache), miss)


@pytest.mark.parametrize("refuse", ["open", "write", "read"])
def test_file_systems_refusing_direct_io_fall_back_to_ordinary_io(tmp_path, rng, monkeypatch,
                                                                   refuse):
    """A file system may refuse O_DIRECT when opening, or only at the first transfer (EINVAL):
    the same bytes then go through ordinary I/O, and a half-written file is rewritten whole."""
    import errno
    import os

    if not direct_io._O_DIRECT:
        pytest.skip("no O_DIRECT on this platform")
    arr = _aligned(rng.integers(-999, 999, (64, 1500)).astype(np.int16))
    path = tmp_path / "r.npy"
    real_open, real_pwrite, real_preadv = os.open, os.pwrite, os.preadv
    direct_fds = set()

    def fake_open(p, flags, *args):
        if flags & direct_io._O_DIRECT:
            if refuse == "open":
                raise OSError(errno.EINVAL, "Invalid argument")
            fd = real_open(p, flags, *args)
            direct_fds.add(fd)
            return fd
        return real_open(p, flags, *args)

    def fake_pwrite(fd, data, offset):
        if refuse == "write" and fd in direct_fds and offset > 0:  # after the header block
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    def fake_preadv(fd, buffers, offset):
        if refuse == "read" and fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "pwrite", fake_pwrite)
    monkeypatch.setattr(os, "preadv", fake_preadv)
    used = direct_io.write_npy(path, arr)
    assert used is (refuse == "read")
    buffer_for, _ = _buffers()
    np.testing.assert_array_equal(direct_io.read_npy(path, buffer_for), arr)
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(path), arr)
    assert path.stat().st_size == direct_io.ALIGN + arr.nbytes


def test_other_io_errors_are_not_hidden(tmp_path, rng):
    arr = _aligned(rng.standard_normal((16, 512)))
    with pytest.raises(OSError):
        direct_io.write_npy(tmp_path / "missing-folder" / "x.npy", arr)
    with pytest.raises(OSError):
        direct_io.read_npy(tmp_path / "absent.npy", direct_io.aligned_buffer)
