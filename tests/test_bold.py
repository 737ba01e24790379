"""Masked BOLD reading against nibabel/nilearn, both gzip back ends, the cache and the mask."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from nilearn.masking import apply_mask, compute_epi_mask

from bids_facedecode.bidsio import bold, masks, run_cache
from bids_facedecode.errors import DataError

SHAPE = (9, 8, 7)
T = 13


def _brain(rng) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    brain = x**2 + y**2 + z**2 < 0.7
    data = np.where(brain[..., None], 900.0, 30.0) + rng.normal(0, 20, SHAPE + (T,))
    return brain, data


def _write(path, data, dtype, slope=None, inter=0.0, endian="<"):
    arr = data.astype(np.dtype(dtype).newbyteorder(endian))
    img = nib.Nifti1Image(arr, np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_data_dtype(arr.dtype)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    img.to_filename(str(path))
    return path


@pytest.fixture(params=["isal", "zlib"])
def backend(request, monkeypatch):
    import zlib

    if request.param == "zlib":
        monkeypatch.setattr(bold, "ZLIB", zlib)
    elif bold.GZIP_BACKEND != "isal":
        pytest.skip("isal is not installed")
    return request.param


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("kind", ["int16_scaled", "float32", "uint8_bigendian"])
def test_masked_read_equals_nibabel(tmp_path, rng, backend, suffix, kind):
    brain, data = _brain(rng)
    if kind == "int16_scaled":
        raw = np.rint((data - 5.0) / 0.037)
        path = _write(tmp_path / f"b{suffix}", raw, np.int16, slope=0.037, inter=5.0)
    elif kind == "float32":
        path = _write(tmp_path / f"b{suffix}", data, np.float32)
    else:
        path = _write(tmp_path / f"b{suffix}", np.clip(data / 4, 0, 255), np.uint8, endian=">")
    img = nib.load(str(path))
    expected = img.get_fdata()[brain].T  # float64 reference, (T, V)
    Y = bold.load_masked_run(path, brain)
    assert Y.dtype == np.float32 and Y.shape == (T, int(brain.sum()))
    assert Y.flags.c_contiguous and Y.flags.writeable
    np.testing.assert_allclose(Y, expected, rtol=2e-7, atol=0)
    # voxel order is nilearn's
    mask_img = nib.Nifti1Image(brain.astype(np.int8), img.affine)
    np.testing.assert_allclose(Y, apply_mask(img, mask_img), rtol=2e-7)


def test_multimember_gzip_and_3d(tmp_path, rng, backend):
    brain, data = _brain(rng)
    plain = _write(tmp_path / "b.nii", data, np.float32)
    payload = plain.read_bytes()
    two = gzip.compress(payload[:1000]) + gzip.compress(payload[1000:])
    (tmp_path / "m.nii.gz").write_bytes(two)
    np.testing.assert_array_equal(bold.load_masked_run(tmp_path / "m.nii.gz", brain),
                                  data.astype(np.float32)[brain].T)
    vol = _write(tmp_path / "v.nii.gz", data[..., 0], np.float32)
    np.testing.assert_array_equal(bold.load_masked_run(vol, brain),
                                  data[..., :1].astype(np.float32)[brain].T)


def test_bad_files_raise_data_error(tmp_path, rng):
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", data, np.float32)
    with pytest.raises(DataError, match="does not match the brain mask"):
        bold.load_masked_run(path, brain[:-1])
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-500]))
    with pytest.raises(DataError, match="cut.nii.gz"):
        bold.load_masked_run(cut, brain)
    nan = data.copy()
    nan[np.nonzero(brain)[0][0], np.nonzero(brain)[1][0], np.nonzero(brain)[2][0], 3] = np.nan
    with pytest.raises(DataError, match="1 NaN/inf"):
        bold.load_masked_run(_write(tmp_path / "nan.nii.gz", nan, np.float32), brain)


def test_cache_hit_equals_miss_and_does_not_decompress(tmp_path, rng, monkeypatch):
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", np.rint(data / 0.05), np.int16, slope=0.05)
    cache = tmp_path / "cache"
    miss = run_cache.load_masked_run_cached(path, brain, cache)
    stored = list(cache.glob("*.npy"))
    assert len(stored) == 1 and np.load(stored[0]).dtype == np.int16  # exact, half of float32

    def no_read(*a, **k):
        raise AssertionError("decompressed on a cache hit")

    monkeypatch.setattr(bold, "read_raw_run", no_read)
    hit = run_cache.load_masked_run_cached(path, brain, cache)
    np.testing.assert_array_equal(hit, miss)
    monkeypatch.undo()
    np.testing.assert_array_equal(hit, bold.load_masked_run(path, brain))
    monkeypatch.setattr(bold, "read_raw_run", no_read)
    hit[0, 0] = -1  # a fresh array each time: callers may write
    np.testing.assert_array_equal(run_cache.load_masked_run_cached(path, brain, cache), miss)
    # another mask is another entry
    monkeypatch.undo()
    other = brain.copy()
    other[np.nonzero(brain)[0][0], np.nonzero(brain)[1][0], np.nonzero(brain)[2][0]] = False
    assert run_cache.load_masked_run_cached(path, other, cache).shape[1] == brain.sum() - 1
    assert len(list(cache.glob("*.npy"))) == 2


def test_corrupt_cache_entry_is_replaced(tmp_path, rng):
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", data, np.float32)
    cache = tmp_path / "cache"
    ref = run_cache.load_masked_run_cached(path, brain, cache)
    (entry,) = cache.glob("*.npy")
    entry.write_bytes(b"garbage")
    np.testing.assert_array_equal(run_cache.load_masked_run_cached(path, brain, cache), ref)
    np.testing.assert_array_equal(np.load(entry), ref)


def test_brain_mask_reads_the_run_once(tmp_path, rng, monkeypatch):
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", np.rint(data / 0.05), np.int16, slope=0.05)
    # reference: nilearn's compute_epi_mask on the mean image
    mean = nib.load(str(path)).get_fdata().mean(axis=3)
    expected = compute_epi_mask(nib.Nifti1Image(mean, np.diag([3.0, 3.0, 3.0, 1.0]))).get_fdata()
    assert masks.compute_brain_mask(path).get_fdata().astype(bool).sum() > 0
    np.testing.assert_array_equal(masks.compute_brain_mask(path).get_fdata(), expected)

    cache = tmp_path / "cache"
    reads = []
    real = bold.read_raw_run
    counted = lambda p: reads.append(p) or real(p)  # noqa: E731
    monkeypatch.setattr(bold, "read_raw_run", counted)  # the cache's reads
    monkeypatch.setattr(masks, "read_raw_run", counted)  # the mask's
    mask_img = masks.compute_brain_mask(path, cache)
    np.testing.assert_array_equal(mask_img.get_fdata(), expected)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    Y = run_cache.load_masked_run_cached(path, mask, cache)  # served by the mask step's read
    again = masks.compute_brain_mask(path, cache)        # cached mask: no read
    assert reads == [path]
    np.testing.assert_array_equal(again.get_fdata(), expected)
    np.testing.assert_allclose(Y, nib.load(str(path)).get_fdata()[mask].T, rtol=2e-7)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("klass", [nib.Nifti1Image, nib.Nifti2Image])
def test_read_header_equals_nibabel(tmp_path, suffix, klass):
    from bids_facedecode.bidsio.bold import read_header

    affine = np.array([[-3.0, 0, 0, 90], [0, 3.0, 0, -120], [0, 0, 3.5, -60], [0, 0, 0, 1]])
    img = klass(np.zeros((5, 6, 4, 7), np.int16), affine)
    img.header.set_zooms((3.0, 3.0, 3.5, 2.0))
    img.header.set_xyzt_units("mm", "sec")
    path = tmp_path / f"x_bold{suffix}"
    nib.save(img, path)
    ref = nib.load(path)
    h = read_header(path)
    assert type(h) is type(ref.header)
    assert h.get_data_shape() == ref.shape
    assert h.get_zooms() == ref.header.get_zooms()
    assert h.get_xyzt_units() == ref.header.get_xyzt_units()
    np.testing.assert_array_equal(h.get_best_affine(), ref.affine)


def test_read_header_names_a_broken_file(tmp_path):
    from bids_facedecode.bidsio.bold import read_header
    from bids_facedecode.errors import DataError

    path = tmp_path / "broken_bold.nii.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="broken_bold.nii.gz: cannot read NIfTI header"):
        read_header(path)


def test_gunzip_into_members_and_limits(tmp_path, monkeypatch, backend):
    monkeypatch.setattr(bold, "_GZ_IN", 1000)  # many small steps
    monkeypatch.setattr(bold, "_GZ_OUT", 3000)  # and bounded output per step
    rng = np.random.default_rng(0)
    a = rng.integers(0, 50, 40_000, dtype=np.uint8).tobytes()
    b = bytes(200_000)  # compresses ~1000:1
    path = tmp_path / "two_members.gz"
    path.write_bytes(gzip.compress(a) + gzip.compress(b))
    buf = memoryview(bytearray(len(a) + len(b) + 10))
    n = bold.gunzip_into(path, buf)
    assert n == len(a) + len(b) and bytes(buf[:n]) == a + b
    small = memoryview(bytearray(50_000))  # stops when the buffer is full
    assert bold.gunzip_into(path, small) == 50_000 and bytes(small) == (a + b)[:50_000]
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(a)[:-2000])
    assert bold.gunzip_into(cut, buf) < len(a)  # truncated: fewer bytes (the caller names it)


def _corrupt(data: bytes, at: int, n: int = 64) -> bytes:
    out = bytearray(data)
    for i in range(at, at + n):
        out[i] ^= 0x5A
    return bytes(out)


def test_gunzip_into_checks_the_crc(tmp_path, monkeypatch, backend):
    """Reading stops at the end of the data but still reaches the member's CRC-32: a file whose
    middle was damaged (and still inflates) or whose trailer is missing raises."""
    monkeypatch.setattr(bold, "_GZ_IN", 4096)
    rng = np.random.default_rng(1)
    data = rng.normal(1000, 20, 300_000).astype("<i2").tobytes()
    packed = gzip.compress(data, 1)
    good, bad, cut = tmp_path / "good.gz", tmp_path / "bad.gz", tmp_path / "nocrc.gz"
    good.write_bytes(packed)
    buf = memoryview(bytearray(len(data)))  # exactly the data, as read_raw_run asks
    assert bold.gunzip_into(good, buf) == len(data) and bytes(buf) == data
    # damage in the middle: some places still inflate to the full length (with wrong values,
    # caught by the CRC), others break the stream; either way the read raises
    decompressor_error = (bold.ZLIB.error, EOFError)
    for at in range(len(packed) // 4, len(packed) * 3 // 4, len(packed) // 16):
        bad.write_bytes(_corrupt(packed, at))
        with pytest.raises(decompressor_error):
            bold.gunzip_into(bad, memoryview(bytearray(len(data))))
    cut.write_bytes(packed[:-8])  # the data complete, the CRC and length gone
    with pytest.raises(EOFError, match="truncated"):
        bold.gunzip_into(cut, memoryview(bytearray(len(data))))


def test_damaged_gzip_run_is_a_data_error_naming_the_file(tmp_path, rng, backend):
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", np.rint(data / 0.05), np.int16, slope=0.05)
    packed = path.read_bytes()
    path.write_bytes(_corrupt(packed, len(packed) // 2))
    with pytest.raises(DataError, match="b.nii.gz: cannot read image data"):
        bold.load_masked_run(path, brain)


def test_unwritable_cache_is_warned_about_and_skipped(tmp_path, rng, caplog):
    """A work dir that cannot hold the cache (here: a file where the cache folder should be)
    costs a warning, not the analysis: the data and the mask are the same as without a cache."""
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", np.rint(data / 0.05), np.int16, slope=0.05)
    cache = tmp_path / "work" / "cache" / "sub-01"
    cache.parent.mkdir(parents=True)
    cache.write_text("not a folder")
    ref = bold.load_masked_run(path, brain)
    with caplog.at_level("WARNING", logger="bids_facedecode.bidsio"):
        mask_img = masks.compute_brain_mask(path, cache)
        for _ in range(2):
            np.testing.assert_array_equal(run_cache.load_masked_run_cached(path, brain, cache), ref)
    warnings = [r for r in caplog.records if "cannot write the run cache" in r.getMessage()]
    assert len(warnings) == 1 and str(cache) in warnings[0].getMessage()  # once per folder
    assert np.array_equal(np.asarray(mask_img.dataobj).astype(bool),
                          np.asarray(masks.compute_brain_mask(path).dataobj).astype(bool))
    assert sorted(p.name for p in cache.parent.iterdir()) == ["sub-01"]  # nothing left behind


def test_damaged_cache_entry_is_detected_by_its_checksum(tmp_path, rng, caplog):
    """A cached run whose bytes changed on disk (same size, valid header) is read again."""
    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", np.rint(data / 0.05), np.int16, slope=0.05)
    cache = tmp_path / "cache"
    ref = run_cache.load_masked_run_cached(path, brain, cache)
    (entry,) = cache.glob("*.npy")
    blob = bytearray(entry.read_bytes())
    blob[-100] ^= 0xFF  # one byte of the data
    entry.write_bytes(bytes(blob))
    with caplog.at_level("WARNING", logger="bids_facedecode.bidsio"):
        again = run_cache.load_masked_run_cached(path, brain, cache)
    np.testing.assert_array_equal(again, ref)
    assert any("checksum" in r.getMessage() for r in caplog.records)
    stored = np.load(entry)  # rewritten whole
    np.testing.assert_array_equal(stored * np.float32(0.05), ref)


def test_cache_entries_of_older_versions_are_replaced_quietly(tmp_path, rng, caplog):
    """Entries written before the checksum existed are read again once, without a warning
    per run."""
    import json

    brain, data = _brain(rng)
    path = _write(tmp_path / "b.nii.gz", np.rint(data / 0.05), np.int16, slope=0.05)
    cache = tmp_path / "cache"
    ref = run_cache.load_masked_run_cached(path, brain, cache)
    (meta,) = cache.glob("*.json")
    doc = json.loads(meta.read_text())
    del doc["crc32"]
    meta.write_text(json.dumps(doc))
    with caplog.at_level("WARNING", logger="bids_facedecode.bidsio"):
        np.testing.assert_array_equal(run_cache.load_masked_run_cached(path, brain, cache), ref)
    assert not caplog.records
    assert "crc32" in json.loads(meta.read_text())  # rewritten with its checksum
