"""Importing the authors' TensorFlow VAE-GAN checkpoint, checked against TensorFlow itself.

The reference is the authors' graph built in TensorFlow (tests/tf_authors_graph.py: their
variable names, shapes and test-time computation) with random weights and a few training
steps of batch-norm statistics, saved in both checkpoint formats. These tests need the ``tf``
extra; they skip without it, and fail instead when ``BIDS_FACEDECODE_REQUIRE_TF=1`` (CI).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tf_authors_graph as G
import torch

from bids_facedecode.errors import EXIT_DATA, EXIT_NO_INPUT, DataError, NoInputError
from bids_facedecode.latents import tf_import, vaegan_authors
from bids_facedecode.latents.import_cli import main as import_main
from bids_facedecode.latents.registry import load_latent_model
from bids_facedecode.latents.tf_checkpoint import CheckpointReader
from bids_facedecode.latents.vaegan_authors import authors_preprocess
from bids_facedecode.latents.vaegan_nets import ARCHS
from bids_facedecode.simulate.faces import face_corpus

pytestmark = pytest.mark.tf
TOL = 1e-4


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError:
        if os.environ.get("BIDS_FACEDECODE_REQUIRE_TF") == "1":
            pytest.fail("TensorFlow is required here (BIDS_FACEDECODE_REQUIRE_TF=1): "
                        "pip install '.[tf]'")
        pytest.skip("TensorFlow not installed (the tf extra)")
    return tf


def _faces(n: int, seed: int) -> np.ndarray:
    """Face photos (simulator faces, 150x120, and LFW crops) prepared as the authors did."""
    sim, _ = face_corpus(n, seed=seed, size=150)
    photos = [im[:, 15:135] for im in sim]  # not square: the centre square is cut first
    from skimage import data

    photos += list(data.lfw_subset()[:n])  # 25x25 grey faces, upsampled
    return np.stack([authors_preprocess(p) for p in photos])


@pytest.fixture(scope="module")
def tf():
    return _tensorflow()


@pytest.fixture(scope="module")
def reduced(tf, tmp_path_factory):
    """Reduced widths (real names and shape logic), discriminator + Adam, faces' statistics."""
    net = G.build(tf, widths=G.REDUCED, seed=0, optimiser=True)
    rng = np.random.default_rng(0)
    faces = _faces(12, seed=3)
    G.train_statistics(net, rng, steps=4, batch=8, images=faces)
    v1, v2 = G.save(net, tmp_path_factory.mktemp("ckpt"))
    yield net, v1, v2, faces
    net.sess.close()  # its threads and memory go now, not at the end of the worker


def _images_and_latents(net, checkpoint, faces, rng):
    randoms = rng.random((4, 128, 128, 3), dtype=np.float32)
    images = np.concatenate([faces, randoms])
    mu_tf = net.run_mu(images, checkpoint)
    d = mu_tf.shape[1]
    z = np.concatenate([mu_tf, np.tanh(rng.standard_normal((4, d))).astype(np.float32)])
    return images, mu_tf, z


@pytest.mark.parametrize("fmt", ["V1", "V2"])
def test_import_matches_tensorflow(reduced, tf, tmp_path, fmt, rng):
    net, v1, v2, faces = reduced
    source = v1 if fmt == "V1" else Path(f"{v2}.index")
    out = tmp_path / "authors"
    _, report = tf_import.import_checkpoint(source, out)
    model = load_latent_model(out)  # as --latent-model vaegan=DIR loads it
    assert model.arch.graph == "authors" and model.crop_factor == 0.8
    images, mu_tf, z = _images_and_latents(net, v1, faces, rng)
    mu = model._encode_prepared(images, batch_size=5)
    assert np.abs(mu - mu_tf).max() <= TOL
    g_tf = G.authors_imdeprocess(net.run_g(z, v1))
    g = model.decode(z, batch_size=3)
    assert g.shape == g_tf.shape and np.abs(g - g_tf).max() <= TOL
    assert np.abs(g_tf).max() > 0.5  # images, not a blank the comparison would pass on
    # every variable accounted for
    names = set(G.variable_names(net, tf))
    assert set(report.used) | {n for v in report.left_aside.values() for n in v} == names
    assert len(report.used) == 5 * 6 + 2 + 4 + 2 + 5 * 6
    assert report.left_aside["discriminator"] == ["discriminator/layer1/W"]
    assert {"beta1_power", "beta2_power", "encoder/layer1/conv2d/W/Adam",
            "encoder/layer1/conv2d/W/Adam_1"} <= set(report.left_aside["optimiser"])
    assert report.left_aside["other"] == ["global_step"]
    cfg = json.loads((out / "config.json").read_text())
    files = cfg["source"]["files"]
    assert [f["name"] for f in files][0] == source.name and cfg["source"]["official"] is False
    assert files[0]["size"] == source.stat().st_size and len(files[0]["sha256"]) == 64


def test_encode_paths_reads_photos_at_their_resolution(reduced, tmp_path):
    """The app encodes stimulus files: read whole, then preprocess128 (not pre-resized)."""
    from bids_facedecode.images import load_image, save_image

    net, v1, _, _ = reduced
    tf_import.import_checkpoint(v1, tmp_path / "m")
    model = load_latent_model(tmp_path / "m")
    sim, _ = face_corpus(3, seed=8, size=200)
    paths = []
    for i, im in enumerate(sim):
        paths.append(tmp_path / f"f{i}.png")
        save_image(im[:, 20:180], paths[-1])
    prepared = np.stack([authors_preprocess(load_image(p)) for p in paths])
    assert np.abs(model.encode_paths(paths) - net.run_mu(prepared, v1)).max() <= TOL


def test_comparison_catches_wrong_padding_or_epsilon(reduced, tmp_path, rng, monkeypatch):
    """The same comparison fails for symmetric padding or another batch-norm epsilon."""
    net, v1, _, faces = reduced
    tf_import.import_checkpoint(v1, tmp_path / "m")
    images, mu_tf, z = _images_and_latents(net, v1, faces, rng)
    g_tf = G.authors_imdeprocess(net.run_g(z, v1))

    def errors(eps=None):
        model = load_latent_model(tmp_path / "m")
        if eps is not None:
            for m in [*model.encoder.modules(), *model.decoder.modules()]:
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.eps = eps
        return (np.abs(model._encode_prepared(images, 256) - mu_tf).max(),
                np.abs(model.decode(z) - g_tf).max())

    assert max(errors()) <= TOL
    for eps in (1e-5, 1e-3):  # torch's and Keras' defaults
        e_mu, e_g = errors(eps)
        assert e_mu > 10 * TOL and e_g > 10 * TOL, eps
    monkeypatch.setattr(vaegan_authors, "_same_pad_stride2", lambda side, k: (1, 1))
    e_mu, e_g = errors()
    assert e_mu > 10 * TOL and e_g > 10 * TOL


def test_authors_graph_moves_its_averages_at_test_time(reduced, tmp_path):
    """Why the reference restores before each run: a second test-time run of the authors'
    graph has other batch-norm statistics (their scripts run once per process)."""
    net, v1, _, faces = reduced
    tf_import.import_checkpoint(v1, tmp_path / "m")
    model = load_latent_model(tmp_path / "m")
    mu = model._encode_prepared(faces, 256)
    first = net.run_mu(faces, v1)
    second = net.run_mu(faces)
    assert np.abs(first - mu).max() <= TOL < np.abs(second - mu).max()


def test_full_size_graph(tf, tmp_path, rng):
    """The published sizes: 128 px, 192..768 channels, encoder/fc/W 12288 x 1024, D = 1024."""
    net = G.build(tf, widths=G.FULL, seed=1, optimiser=False)
    G.train_statistics(net, rng, steps=12, batch=2)
    v1, _ = G.save(net, tmp_path / "ckpt")
    model, report = tf_import.import_checkpoint(v1, tmp_path / "m")
    full = ARCHS["authors"]
    for field in ("image_size", "latent_dim", "enc_channels", "enc_dense", "dec_fc_channels",
                  "dec_channels", "kernel"):
        assert getattr(model.arch, field) == getattr(full, field), field
    assert len(report.used) == 68
    images = rng.random((2, 128, 128, 3), dtype=np.float32)
    mu_tf = net.run_mu(images, v1)
    assert np.abs(model._encode_prepared(images, 256) - mu_tf).max() <= TOL
    g_tf = G.authors_imdeprocess(net.run_g(mu_tf, v1))
    net.sess.close()
    assert np.abs(model.decode(mu_tf) - g_tf).max() <= TOL


@pytest.mark.parametrize("fmt", ["V1", "V2"])
def test_pure_reader_matches_tensorflow(reduced, tf, fmt):
    """Every variable (float32 weights, Adam slots, the int64 step) as TensorFlow reads it."""
    path = reduced[1] if fmt == "V1" else reduced[2]
    ours = CheckpointReader(path)
    ref = tf.train.load_checkpoint(str(path))
    shapes = ref.get_variable_to_shape_map()
    assert ours.format == fmt and set(ours.shapes) == set(shapes)
    for name, shape in shapes.items():
        a, b = ours.get_tensor(name), np.asarray(ref.get_tensor(name))
        assert a.shape == tuple(shape) and a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert ours.get_tensor("global_step") > 0


def test_import_needs_no_tensorflow(reduced, tmp_path, monkeypatch):
    """With TensorFlow unimportable the import gives the same model."""
    import sys

    tf_import.import_checkpoint(reduced[1], tmp_path / "with")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    monkeypatch.setitem(sys.modules, "tensorflow.python.training", None)
    tf_import.import_checkpoint(reduced[1], tmp_path / "without")
    a, b = load_latent_model(tmp_path / "with"), load_latent_model(tmp_path / "without")
    assert a.fingerprint() == b.fingerprint()


def test_tensorflow_reads_what_the_pure_reader_does_not(reduced, tmp_path, monkeypatch):
    """A table the pure reader refuses (e.g. compressed) is read with TensorFlow if present."""
    tf_import.import_checkpoint(reduced[1], tmp_path / "pure")

    def refuse(prefix):
        raise tf_import.CheckpointFormatError("compressed table block (type 1)")

    monkeypatch.setattr(tf_import, "CheckpointReader", refuse)
    tf_import.import_checkpoint(reduced[1], tmp_path / "tf")
    a, b = load_latent_model(tmp_path / "pure"), load_latent_model(tmp_path / "tf")
    assert a.fingerprint() == b.fingerprint()


# ------------------------------------------------------------------ error paths
def _nothing_written(folder: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(f".{out.name}")]


def test_missing_variable(reduced, tf, tmp_path, capsys):
    net = reduced[0]
    bad = G.save_subset(net, tf, tmp_path / "bad.ckpt", drop="generator/layer3/bn/gamma")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="variable 'generator/layer3/bn/gamma' missing"):
        tf_import.import_checkpoint(bad, out)
    _nothing_written(tmp_path, out)
    assert import_main([str(bad), "--out", str(out)]) == EXIT_DATA
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "generator/layer3/bn/gamma" in err
    _nothing_written(tmp_path, out)


def test_missing_moving_average(reduced, tf, tmp_path):
    net = reduced[0]
    ema = [n for n in G.variable_names(net, tf)
           if n.startswith("encoder/layer4/bn/") and n.endswith("Squeeze_1/ExponentialMovingAverage")]
    bad = G.save_subset(net, tf, tmp_path / "bad.ckpt", drop=ema[0])
    with pytest.raises(DataError, match=r"encoder/layer4/bn/\.\.\./moments/Squeeze_1/.*missing"):
        tf_import.import_checkpoint(bad, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


def test_shape_mismatch(reduced, tf, tmp_path):
    net = reduced[0]
    bad = G.save_subset(net, tf, tmp_path / "bad.ckpt",
                        rename=("encoder/layer2/bn/gamma", "encoder/layer3/bn/gamma"))
    with pytest.raises(DataError, match=r"'encoder/layer2/bn/gamma' has shape \(24,\), "
                                        r"expected \(16,\)"):
        tf_import.import_checkpoint(bad, tmp_path / "out")
    _nothing_written(tmp_path, tmp_path / "out")


def test_not_a_checkpoint(tf, tmp_path, capsys, rng):
    pointer = tmp_path / "vaegan_celeba.ckpt"
    pointer.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:f97e\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="Git LFS pointer"):
        tf_import.import_checkpoint(pointer, out)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(rng.bytes(5000))
    with pytest.raises(DataError, match="not a TensorFlow checkpoint"):
        tf_import.import_checkpoint(junk, out)
    assert import_main([str(junk), "--out", str(out)]) == EXIT_DATA
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    _nothing_written(tmp_path, out)
    with pytest.raises(NoInputError):
        tf_import.import_checkpoint(tmp_path / "absent.ckpt", out)
    assert import_main([str(tmp_path / "absent.ckpt"), "--out", str(out)]) == EXIT_NO_INPUT


def test_official_checksum_recognised(reduced, tmp_path, monkeypatch, caplog):
    """The published file's sha256 and size are recognised; another file gets a warning."""
    v1 = reduced[1]
    with caplog.at_level(logging.WARNING, logger=tf_import.LOG.name):
        _, report = tf_import.import_checkpoint(v1, tmp_path / "a")
    assert not report.official and "not the authors' published" in caplog.text
    caplog.clear()
    monkeypatch.setattr(tf_import, "OFFICIAL_SHA256", tf_import.sha256_of(v1))
    monkeypatch.setattr(tf_import, "OFFICIAL_SIZE", v1.stat().st_size)
    with caplog.at_level(logging.INFO, logger=tf_import.LOG.name):
        _, report = tf_import.import_checkpoint(v1, tmp_path / "b")
    assert report.official and "is the authors' published checkpoint" in caplog.text
    assert "WARNING" not in caplog.text
    assert json.loads((tmp_path / "b" / "config.json").read_text())["source"]["official"]


def test_output_exists_refused(reduced, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(Exception, match="already exists"):
        tf_import.import_checkpoint(reduced[1], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_torch_only_after_import(reduced, tmp_path):
    """The model directory holds torch tensors only (nothing needs TensorFlow to use it)."""
    tf_import.import_checkpoint(reduced[1], tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json",
                                                                   "model.safetensors"]
    model = load_latent_model(tmp_path / "m")
    assert all(isinstance(t, torch.Tensor) for t in model.state_tensors().values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_import_matches_tensorflow_on_cuda(reduced, tmp_path, rng):
    """The same comparison with the model on the GPU (full float32 convolutions, no TF32)."""
    net, v1, _, faces = reduced
    tf_import.import_checkpoint(v1, tmp_path / "m")
    model = load_latent_model(tmp_path / "m", device="cuda")
    images, mu_tf, z = _images_and_latents(net, v1, faces, rng)
    assert np.abs(model._encode_prepared(images, 256) - mu_tf).max() <= TOL
    assert np.abs(model.decode(z) - G.authors_imdeprocess(net.run_g(z, v1))).max() <= TOL


@pytest.mark.slow
def test_app_runs_with_the_imported_model(reduced, app_dataset, tmp_path):
    """``--latent-model vaegan=DIR`` with an imported model: decoding, reconstructions in the
    outputs and the report, the decoded latents as a .mat."""
    from scipy.io import loadmat

    from bids_facedecode.cli import main

    tf_import.import_checkpoint(reduced[1], tmp_path / "authors")
    out = tmp_path / "derivatives"
    code = main([str(app_dataset), str(out), "participant", "--participant-label", "01",
                 "--latent-space", "vaegan", "--latent-model", f"vaegan={tmp_path / 'authors'}",
                 "--n-voxels", "300", "--nprocs", "2", "-w", str(tmp_path / "work")])
    assert code == 0
    func = out / "sub-01" / "func"
    table = pd.read_csv(func / "sub-01_task-faces_desc-vaegan_decoding.tsv", sep="\t")
    latent = loadmat(func / "sub-01_task-faces_desc-vaegan_decoding.mat")["latent"]
    assert latent.shape == (len(table), G.REDUCED["n_code"])
    assert (out / "sub-01" / "figures" / "sub-01_task-faces_desc-vaegan_reconstructions.png").is_file()
    assert (out / "sub-01.html").is_file()
