"""The training command, the shipped models and latent arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bids_facedecode.errors import EXIT_NO_INPUT, EXIT_USAGE, DataError
from bids_facedecode.images import save_image
from bids_facedecode.latents import arithmetic
from bids_facedecode.latents.cli import build_parser, main
from bids_facedecode.latents.registry import load_latent_model, shipped_models
from bids_facedecode.simulate.faces import GENDER_INDEX, face_corpus


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces")
    images, _ = face_corpus(40, seed=11, size=20)
    (d / "sub").mkdir()
    for i, img in enumerate(images):  # a nested folder: the search is recursive
        save_image(img, d / "sub" / f"M{i:03d}.png" if i % 2 else d / f"F{i:03d}.png")
    return d


def test_cli_trains_pca(tmp_path, image_dir):
    rc = main(["--images", str(image_dir), "--space", "pca", "--out", str(tmp_path / "p"),
               "--latent-dim", "8", "--image-size", "16", "--device", "cpu"])
    assert rc == 0
    model = load_latent_model(tmp_path / "p")
    cfg = json.loads((tmp_path / "p" / "config.json").read_text())
    assert model.space == "pca" and model.latent_dim == 8 and cfg["training"]["n_images"] == 40
    assert cfg["training"]["data_hash"] and cfg["versions"]["torch"]
    spectrum = pd.read_csv(tmp_path / "p" / "pca_spectrum.csv")
    assert spectrum["explained_variance"].is_monotonic_decreasing
    assert 0 < spectrum["cumulative"].iloc[-1] <= 1 + 1e-6


def test_cli_trains_vaegan_and_resumes(tmp_path, image_dir):
    args = ["--images", str(image_dir), "--space", "vaegan", "--arch", "tiny", "--out",
            str(tmp_path / "v"), "--batch-size", "8", "--device", "cpu",
            "--no-progress", "--max-images", "24", "--checkpoint-every", "2"]
    assert main([*args, "--epochs", "2"]) == 0
    cfg = json.loads((tmp_path / "v" / "config.json").read_text())
    assert cfg["training"]["n_images"] == 24 and cfg["training"]["steps"] == 6
    assert sorted(p.name for p in (tmp_path / "v" / "checkpoints").iterdir())
    assert len(pd.read_csv(tmp_path / "v" / "losses.csv")) == 6
    assert main([*args, "--epochs", "2"]) == EXIT_USAGE  # checkpoints exist, no --resume
    assert main([*args, "--epochs", "3", "--resume"]) == 0
    assert len(pd.read_csv(tmp_path / "v" / "losses.csv")) == 9


def test_cli_errors(tmp_path, capsys):
    assert main(["--images", str(tmp_path / "none"), "--space", "pca", "--out",
                 str(tmp_path / "o")]) == EXIT_NO_INPUT
    assert "image folder not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--images", "x", "--space", "pca", "--out", "o",
                                   "--epochs", "0"])


@pytest.mark.parametrize("name", ["pca", "vaegan"])
def test_shipped_models_load_and_reconstruct(name):
    if name not in shipped_models():
        pytest.skip(f"shipped {name} model not present")
    model = load_latent_model(name)
    assert model.latent_dim == 128 and model.image_size == 64
    images, _ = face_corpus(8, seed=123456, size=64)
    rec = model.decode(model.encode(images))
    r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(images, rec, strict=True)]
    assert min(r) > 0.95  # held-out faces reconstruct well


def test_arithmetic(tmp_path):
    from bids_facedecode.latents.pca import PCAModel

    images, params = face_corpus(60, seed=3, size=16)
    model = PCAModel.fit(images, n_components=12, image_size=16)
    is_male = params[:, GENDER_INDEX] > 0.5
    z = model.encode(images)
    axis = arithmetic.gender_axis(z, is_male)
    np.testing.assert_allclose(axis, z[is_male].mean(0) - z[~is_male].mean(0), atol=1e-5)
    steps = arithmetic.interpolate(model, images[0], images[1], 5)
    assert steps.shape == (5, 16, 16, 3)
    # PCA is linear: the midpoint image is the mean of the end images (before clipping)
    ends = model.decode(z[:2])
    assert np.abs(steps[2] - ends.mean(0)).mean() < 0.01
    moved = arithmetic.move_along(model, z[:3], axis, np.array([-1.0, 0.0, 1.0]))
    assert moved.shape == (3, 3, 16, 16, 3)
    np.testing.assert_allclose(moved[:, 1], model.decode(z[:3]), atol=1e-6)
    # moving along the axis moves the projection on it by alpha * |axis|^2
    zm = model.encode(moved[:, 2])
    gain = (zm - z[:3]) @ axis / (axis @ axis)
    assert np.all(gain > 0.5)
    with pytest.raises(DataError, match="male and one female"):
        arithmetic.gender_axis(z, np.ones(60, dtype=bool))
    out = arithmetic.plot_latent_arithmetic(model, images, is_male, tmp_path / "fig.png",
                                            n_steps=4, n_rows=2)
    assert out.stat().st_size > 1000


def test_training_uses_the_app_device_resolver(tmp_path, image_dir, capsys, monkeypatch):
    """One resolver (bids_facedecode.device.select_device) for the app and the training command:
    CUDA asked for and absent is the app's usage error (exit 64, its message), nothing written."""
    from bids_facedecode import device
    from bids_facedecode.latents import cli, train

    assert train.select_device is device.select_device is cli.select_device
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    for space in ("pca", "vaegan"):
        out = tmp_path / space
        assert main(["--images", str(image_dir), "--space", space, "--arch", "tiny", "--out",
                     str(out), "--device", "cuda", "--epochs", "1", "--no-progress"]) == EXIT_USAGE
        assert "--device 'cuda': CUDA was requested but torch sees no CUDA device" in \
            capsys.readouterr().err
        assert not out.exists()
