"""PCA latent model: numerics against numpy SVD and scikit-learn, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bids_facedecode.errors import DataError, NoInputError
from bids_facedecode.latents.pca import PCAModel, fit_pca
from bids_facedecode.latents.registry import load_latent_model


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def faces(rng):
    # low-rank images plus noise, (40, 8, 8, 3) in [0, 1]
    basis = rng.normal(size=(5, 8 * 8 * 3))
    coef = rng.normal(size=(40, 5))
    x = 0.5 + 0.05 * (coef @ basis) + 0.01 * rng.normal(size=(40, 8 * 8 * 3))
    return np.clip(x, 0, 1).reshape(40, 8, 8, 3).astype(np.float32)


def test_fit_pca_full_matches_numpy_svd(rng):
    x = rng.normal(size=(30, 12)) @ rng.normal(size=(12, 12))
    mean, comps, var = fit_pca(torch.from_numpy(x), 6, method="full")
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(mean.numpy(), x.mean(0), atol=1e-10)
    np.testing.assert_allclose(var.numpy(), s[:6] ** 2 / 29, rtol=1e-8)
    # same subspace, same axes up to sign
    np.testing.assert_allclose(np.abs(np.sum(comps.numpy() * vt[:6], axis=1)), 1.0, atol=1e-8)


def test_fit_pca_randomized_matches_sklearn(rng):
    from sklearn.decomposition import PCA

    x = rng.normal(size=(200, 10)) @ rng.normal(size=(10, 300)) + 0.01 * rng.normal(size=(200, 300))
    mean, comps, var = fit_pca(torch.from_numpy(x), 5, method="randomized", seed=3)
    ref = PCA(5, svd_solver="full").fit(x)
    np.testing.assert_allclose(var.numpy(), ref.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(np.abs(np.sum(comps.numpy() * ref.components_, axis=1)), 1.0,
                               atol=1e-6)


def test_pca_model_encode_decode_match_sklearn(faces):
    from sklearn.decomposition import PCA

    model = PCAModel.fit(faces, n_components=10, image_size=8, method="full")
    flat = faces.reshape(len(faces), -1)
    ref = PCA(10, svd_solver="full").fit(flat)
    z = model.encode(faces)
    zr = ref.transform(flat)
    signs = np.sign(np.sum(model.components.numpy() * ref.components_, axis=1))
    np.testing.assert_allclose(z, zr * signs, atol=2e-4)
    rec = model.decode(z)
    assert rec.shape == (40, 8, 8, 3) and rec.dtype == np.float32
    np.testing.assert_allclose(rec.reshape(40, -1), np.clip(ref.inverse_transform(zr), 0, 1),
                               atol=2e-4)


def test_pca_whiten_gives_unit_variance(faces):
    model = PCAModel.fit(faces, n_components=4, image_size=8, whiten=True, method="full")
    z = model.encode(faces)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), 1.0, rtol=1e-3)
    rec = model.decode(z)
    plain = PCAModel.fit(faces, n_components=4, image_size=8, method="full")
    np.testing.assert_allclose(rec, plain.decode(plain.encode(faces)), atol=1e-5)


def test_pca_caps_components_and_resizes(faces):
    model = PCAModel.fit(faces[:6], n_components=1024, image_size=4)
    assert model.latent_dim == 6
    z = model.encode(faces)  # 8x8 images are resized to 4x4
    assert z.shape == (40, 6)
    assert model.decode(z).shape == (40, 4, 4, 3)


def test_pca_batching_does_not_change_results(faces):
    model = PCAModel.fit(faces, n_components=8, image_size=8)
    np.testing.assert_allclose(model.encode(faces, batch_size=7), model.encode(faces), atol=1e-6)


def test_pca_save_load_round_trip(tmp_path, faces):
    model = PCAModel.fit(faces, n_components=8, image_size=8, meta={"training": {"seed": 1}})
    model.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["kind"] == "pca" and cfg["latent_dim"] == 8 and cfg["image_size"] == 8
    assert cfg["training"]["seed"] == 1 and "torch" in cfg["versions"]
    loaded = load_latent_model(tmp_path / "m")
    assert isinstance(loaded, PCAModel)
    z = model.encode(faces)
    np.testing.assert_array_equal(loaded.encode(faces), z)
    np.testing.assert_array_equal(loaded.decode(z), model.decode(z))
    # saving again over an existing directory replaces the files
    model.save(tmp_path / "m")
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]


def test_load_errors(tmp_path, faces):
    with pytest.raises(NoInputError, match="not found"):
        load_latent_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="config.json missing"):
        load_latent_model(tmp_path / "empty")
    model = PCAModel.fit(faces, n_components=4, image_size=8)
    model.save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt model config"):
        load_latent_model(tmp_path / "m")
    model.save(tmp_path / "m2")
    cfg = json.loads((tmp_path / "m2" / "config.json").read_text())
    cfg["latent_dim"] = 5
    (tmp_path / "m2" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="tensor 'components' has shape"):
        load_latent_model(tmp_path / "m2")
    model.save(tmp_path / "m3")
    (tmp_path / "m3" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt weights"):
        load_latent_model(tmp_path / "m3")
    cfg["kind"] = "autoencoder"
    cfg["latent_dim"] = 4
    model.save(tmp_path / "m4")
    (tmp_path / "m4" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="unknown model kind"):
        load_latent_model(tmp_path / "m4")


def test_bad_inputs(faces):
    model = PCAModel.fit(faces, n_components=4, image_size=8)
    with pytest.raises(DataError, match=r"expected shape \(N, 4\)"):
        model.decode(np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"values must lie in \[0, 1\]"):
        model.encode(faces * 300)
    with pytest.raises(DataError, match="expected an array of shape"):
        model.encode(np.zeros((2, 8)))


def test_images_of_frames_files_as_the_encoder_crops_them(tmp_path):
    from PIL import Image

    from bids_facedecode.latents.pca import PCAModel

    # a 40x40 photo: a white 4-pixel border around a grey centre
    img = np.full((40, 40, 3), 255, np.uint8)
    img[4:36, 4:36] = 128
    Image.fromarray(img).save(tmp_path / "f.png")
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 1, (30, 40, 40, 3)).astype(np.float32)
    cropped = PCAModel.fit(train, n_components=4, image_size=16, crop_factor=0.8)
    full = PCAModel.fit(train, n_components=4, image_size=16)
    seen = cropped.images_of([tmp_path / "f.png"])[0]
    assert seen.shape == (16, 16, 3)
    # the 0.8 crop removes the white border (resampling rings a little at the edges)
    assert seen.max() < 0.6 and abs(float(np.median(seen)) - 128 / 255) < 0.01
    # the uncropped model sees the border
    assert full.images_of([tmp_path / "f.png"])[0].max() > 0.95
