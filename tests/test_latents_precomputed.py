"""Precomputed latent tables: TSV / NPZ / MATLAB readers, lookup order, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.io import savemat

from bids_facedecode.errors import DataError, NoInputError
from bids_facedecode.latents.precomputed import LatentTable, load_latent_table, write_latent_table

STIMS = ["sub01/run01/F0001.jpg", "sub01/run01/M0002.jpg", "sub01/run13/F0559.jpg"]
HASHES = ["a" * 40, "b" * 40, "c" * 40]


@pytest.fixture
def z():
    return np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".tsv", ".npz"])
def test_write_read_round_trip(tmp_path, z, suffix):
    path = tmp_path / f"latents{suffix}"
    write_latent_table(path, STIMS, z)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the lab, not private
    table = load_latent_table(path)
    assert table.keys == STIMS and table.latent_dim == 5
    np.testing.assert_array_equal(table.latents, z)
    np.testing.assert_array_equal(table.lookup(STIMS[::-1]), z[::-1])


def test_tsv_with_hash_keys_and_any_numeric_columns(tmp_path, z):
    path = tmp_path / "t.tsv"
    lines = ["sha1\ta\tb\tc\td\te"] + ["\t".join([h, *map(repr, row.tolist())])
                                      for h, row in zip(HASHES, z, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    table = load_latent_table(path)
    out = table.lookup(["x/whatever.png", "y.png"], hashes=["c" * 40, "A" * 40])
    np.testing.assert_allclose(out, z[[2, 0]], rtol=1e-6)


def test_z_columns_are_ordered_numerically(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("stim_file\tz2\tz10\tz1\tz3\tz4\tz5\tz6\tz7\tz8\tz9\n"
                    "F1.png\t2\t10\t1\t3\t4\t5\t6\t7\t8\t9\n")
    np.testing.assert_array_equal(load_latent_table(path).latents[0], np.arange(1, 11))


def test_lookup_order_hash_then_path_then_name(tmp_path, z, caplog):
    keys = ["F0001.jpg", "sub01/run01/F0001.jpg", "b" * 40]
    table = LatentTable(keys, z, tmp_path / "x.tsv")
    # the hash wins over the path, the path over the bare name
    out = table.lookup(["sub01/run01/F0001.jpg", "sub02/run05/F0001.jpg"],
                       hashes=["b" * 40, "f" * 40])
    np.testing.assert_array_equal(out, z[[2, 0]])
    np.testing.assert_array_equal(table.lookup(["stimuli/sub01/run01/F0001.jpg"]), z[[1]])
    # a bare name found twice with different latents: warn, use the first
    two = LatentTable(["a/F9.jpg", "b/F9.jpg"], z[:2])
    with caplog.at_level(logging.WARNING, logger="bids_facedecode.latents"):
        np.testing.assert_array_equal(two.lookup(["c/F9.jpg"]), z[[0]])
    assert "matches 2 rows" in caplog.text


def test_missing_stimuli_are_listed(tmp_path, z):
    path = tmp_path / "t.npz"
    write_latent_table(path, STIMS, z)
    table = load_latent_table(path)
    with pytest.raises(DataError, match=r"t\.npz: no latents for 2 of 3 stimuli: "
                                        r"sub01/run02/M9\.jpg, G1\.png"):
        table.lookup(["sub01/run02/M9.jpg", STIMS[0], "G1.png"])


def test_mat_files_as_written_by_vaegan_image2latent(tmp_path, z):
    # VAEGAN_image2latent.py -i F0559.jpg writes F0559_z.mat holding latent (1, D)
    folder = tmp_path / "mats"
    for stim, row in zip(STIMS, z, strict=True):
        out = folder / stim
        out.parent.mkdir(parents=True, exist_ok=True)
        savemat(str(out)[:-4] + "_z.mat", {"latent": row[None, :]})
    table = load_latent_table(folder)
    np.testing.assert_array_equal(table.lookup(STIMS), z)
    one = load_latent_table(folder / "sub01/run13/F0559_z.mat")
    assert one.keys == ["F0559"]
    np.testing.assert_array_equal(one.lookup(["sub07/run02/F0559.jpg"]), z[[2]])


def test_mat_with_keys_variable(tmp_path, z):
    path = tmp_path / "all.mat"
    savemat(path, {"latent": z, "keys": np.array(STIMS, dtype=object)})
    np.testing.assert_array_equal(load_latent_table(path).lookup(STIMS), z)
    savemat(tmp_path / "nokeys.mat", {"latent": z})
    with pytest.raises(DataError, match="no keys variable"):
        load_latent_table(tmp_path / "nokeys.mat")
    savemat(tmp_path / "other.mat", {"predictions": z})
    with pytest.raises(DataError, match="no 'latent' variable"):
        load_latent_table(tmp_path / "other.mat")


def test_bad_tables(tmp_path, z):
    with pytest.raises(NoInputError, match="not found"):
        load_latent_table(tmp_path / "none.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("stim_file\tz1\tz2\nF1.png\t0.1\tabc\n")
    with pytest.raises(DataError, match=r"bad\.tsv: non-numeric or missing latent value in "
                                        r"column 'z2'"):
        load_latent_table(bad)
    gap = tmp_path / "gap.tsv"
    gap.write_text("stim_file\tz1\tz3\nF1.png\t0.1\t0.2\n")
    with pytest.raises(DataError, match="without gaps"):
        load_latent_table(gap)
    dup = tmp_path / "dup.tsv"
    dup.write_text("stim_file\tz1\nF1.png\t0.1\nF1.png\t0.2\n")
    with pytest.raises(DataError, match="appears twice"):
        load_latent_table(dup)
    np.savez(tmp_path / "w.npz", keys=np.array(STIMS), latents=z[:2])
    with pytest.raises(DataError, match="N = len"):
        load_latent_table(tmp_path / "w.npz")
    np.savez(tmp_path / "k.npz", z=z)
    with pytest.raises(DataError, match="must hold arrays 'keys' and 'latents'"):
        load_latent_table(tmp_path / "k.npz")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unknown latent table format"):
        load_latent_table(tmp_path / "x.json")
    with pytest.raises(DataError, match="NaN"):
        LatentTable(["a"], np.array([[np.nan]]))
