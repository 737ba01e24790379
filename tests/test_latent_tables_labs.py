"""Latent and label tables as labs write them, and the decoded latents as a MATLAB file."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.io import loadmat, savemat

from bids_facedecode.bidsio.labels import imagined_files_for_run, read_imagery_labels
from bids_facedecode.errors import DataError
from bids_facedecode.latents.precomputed import load_latent_table


@pytest.fixture
def z(rng):
    return rng.standard_normal((3, 4)).astype(np.float32)


def _write(path, header, keys, z, extra=None):
    rows = ["\t".join(header)]
    for i, (k, row) in enumerate(zip(keys, z, strict=True)):
        rows.append("\t".join([k, *(extra[i] if extra else []), *map(repr, row.tolist())]))
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("names", [["z0", "z1", "z2", "z3"], ["z000", "z001", "z002", "z003"],
                                   ["z1", "z2", "z3", "z4"], ["z01", "z02", "z03", "z04"]])
def test_latent_column_numbering(tmp_path, z, names):
    path = tmp_path / "t.tsv"
    # shuffled column order: the numbers decide
    order = [2, 0, 3, 1]
    _write(path, ["stim_file", *[names[i] for i in order]], ["a.png", "b.png", "c.png"],
           z[:, order])
    np.testing.assert_array_equal(load_latent_table(path).latents, z)


def test_non_latent_columns_ignored(tmp_path, z):
    path = tmp_path / "t.tsv"
    extra = [["ab" * 20, "first one", "M"], ["cd" * 20, "blurry", "F"], ["ef" * 20, "", "M"]]
    _write(path, ["stim_file", "sha1", "notes", "gender", "z1", "z2", "z3", "z4"],
           ["a.png", "b.png", "c.png"], z, extra)
    table = load_latent_table(path)
    assert table.latent_dim == 4
    np.testing.assert_array_equal(table.latents, z)
    # no z columns: the numeric ones are the latents, text and hash columns are not
    _write(path, ["stim_file", "sha256", "notes", "a", "b", "c", "d"], ["a.png", "b.png", "c.png"],
           z, [["12" * 32, "x", ], ["34" * 32, "y"], ["56" * 32, "z"]])
    np.testing.assert_array_equal(load_latent_table(path).latents, z)


def test_broken_numbering_refused(tmp_path, z):
    path = tmp_path / "t.tsv"
    _write(path, ["stim_file", "z0", "z1", "z3", "z4"], ["a", "b", "c"], z)
    with pytest.raises(DataError, match="without gaps"):
        load_latent_table(path)
    _write(path, ["stim_file", "z2", "z3", "z4", "z5"], ["a", "b", "c"], z)
    with pytest.raises(DataError, match="z1..zD or z0"):
        load_latent_table(path)


def test_sha256_keys_match_the_files(tmp_path, z):
    files = []
    for i in range(3):
        files.append(tmp_path / f"img{i}.png")
        files[-1].write_bytes(bytes([i]) * 50)
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    sha1 = [hashlib.sha1(f.read_bytes()).hexdigest() for f in files]
    path = tmp_path / "t.tsv"
    _write(path, ["sha256", "z1", "z2", "z3", "z4"], [d.upper() for d in digests[::-1]], z)
    table = load_latent_table(path)
    assert table.has_sha256_keys
    got = table.lookup(["renamed0.png", "renamed1.png", "renamed2.png"], sha1, files=files)
    np.testing.assert_array_equal(got, z[::-1])
    with pytest.raises(DataError, match="no latents for 3"):
        table.lookup(["renamed0.png", "renamed1.png", "renamed2.png"], sha1)


def test_authors_z_mat_files(tmp_path, z):
    for i, name in enumerate(["F1", "M2", "F3"]):
        savemat(tmp_path / f"{name}_z.mat", {"latent": z[i:i + 1]})  # VAEGAN_image2latent.py
    table = load_latent_table(tmp_path)
    np.testing.assert_array_equal(table.lookup(["x/M2.jpg", "F1.png"]), z[[1, 0]])


def test_imagery_labels_bids_participant_id_and_prefixes(tmp_path):
    path = tmp_path / "img.tsv"
    pd.DataFrame({"participant_id": ["sub-01", "01", "sub-02"], "session_id": ["ses-02", "02", ""],
                  "run": ["run-2", "02", "2"], "onset": [384.0, 100.0, 384.0],
                  "imagined_stim_file": ["a/F1.jpg", "b/M2.jpg", "c/F3.jpg"]}).to_csv(
        path, sep="\t", index=False)
    table = read_imagery_labels(path)
    assert list(table["sub"]) == ["01", "01", "02"] and list(table["run"]) == ["2", "2", "2"]
    run = SimpleNamespace(subject="01", session="02", run="02", events=tmp_path / "e_events.tsv")
    assert imagined_files_for_run(table, run, np.array([384.0, 100.0, 5.0])) == [
        "a/F1.jpg", "b/M2.jpg", ""]
    other = SimpleNamespace(subject="02", session=None, run="2", events=tmp_path / "x_events.tsv")
    assert imagined_files_for_run(table, other, np.array([384.0])) == ["c/F3.jpg"]


def test_decoded_latents_mat_for_latent2image(app_run):
    """``*_decoding.mat`` holds ``latent`` (N x D) in the decoding table's row order, read as
    the authors' VAEGAN_latent2image.py reads it."""
    func = app_run / "sub-01" / "func"
    table = pd.read_csv(func / "sub-01_task-faces_desc-pca_decoding.tsv", sep="\t")
    mat = loadmat(func / "sub-01_task-faces_desc-pca_decoding.mat")
    latent = mat["latent"]
    decoded = table[[c for c in table.columns if c.startswith("decoded_z")]].to_numpy()
    assert latent.shape == decoded.shape
    np.testing.assert_allclose(latent, decoded, rtol=1e-5, atol=1e-6)
    names = [str(np.asarray(s).ravel()[0]) for s in mat["stim_file"].ravel()]
    assert names == table["stim_file"].tolist()
