"""Decoder refinement (the VAE-GAN's second stage): the encoder and latent space stay fixed,
reconstructions of the posterior means improve, runs are reproducible, the model directory
records it, the training command drives it (CUDA path skipped without a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bids_facedecode.errors import EXIT_USAGE, UsageError
from bids_facedecode.images import save_image
from bids_facedecode.latents.cli import main
from bids_facedecode.latents.datasets import FaceImages
from bids_facedecode.latents.refine import REFINE_COLUMNS, refine_decoder, refine_saved_model
from bids_facedecode.latents.registry import load_latent_model
from bids_facedecode.latents.train import TrainOptions, train_vaegan
from bids_facedecode.latents.vaegan import VAEGANModel
from bids_facedecode.latents.vaegan_nets import get_arch
from bids_facedecode.simulate.faces import face_corpus

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device")])]


@pytest.fixture(scope="module")
def faces():
    images, _ = face_corpus(64, seed=8, size=32)
    return images


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory, faces):
    """A tiny VAE-GAN after a short adversarial stage, saved."""
    out = tmp_path_factory.mktemp("adv") / "m"
    arch = get_arch("tiny", latent_dim=8, image_size=32)
    opts = TrainOptions(epochs=3, batch_size=16, lr=2e-3, device="cpu", progress=False,
                        checkpoint_every=0)
    train_vaegan(FaceImages.from_array(faces, 32), out, arch, opts)
    return out


def _mse(model: VAEGANModel, images: np.ndarray) -> float:
    return float(np.mean((model.decode(model.encode(images)) - images) ** 2))


def _tensors(model: VAEGANModel, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_tensors().items()
            if k.startswith(prefix)}


@pytest.mark.parametrize("device", DEVICES)
def test_refinement_improves_reconstruction_and_keeps_the_encoder(adversarial, faces, device,
                                                                  tmp_path):
    model = load_latent_model(adversarial, device=device)
    before_mse = _mse(model, faces)
    enc0, dec0 = _tensors(model, "encoder."), _tensors(model, "decoder.")
    z0 = model.encode(faces)
    log = tmp_path / "refine.csv"
    record = refine_decoder(model.encoder, model.decoder, FaceImages.from_array(faces, 32),
                            epochs=6, lr=2e-3, batch_size=16, device=device, log_path=log,
                            progress=False)
    # the encoder (weights and batch-norm statistics) and hence every encoding are unchanged
    for k, v in _tensors(model, "encoder.").items():
        torch.testing.assert_close(v, enc0[k], rtol=0, atol=0)
    np.testing.assert_array_equal(model.encode(faces), z0)
    # the decoder's weights moved, its batch-norm running statistics did not (eval mode)
    after = _tensors(model, "decoder.")
    stats = [k for k in after if k.endswith(("running_mean", "running_var"))]
    assert stats
    for k in stats:
        torch.testing.assert_close(after[k], dec0[k], rtol=0, atol=0)
    assert any(not torch.equal(after[k], dec0[k]) for k in after if k not in stats)
    after_mse = _mse(model, faces)
    assert after_mse < 0.8 * before_mse, (before_mse, after_mse)
    losses = pd.read_csv(log)
    assert list(losses.columns) == list(REFINE_COLUMNS)
    assert len(losses) == record["steps"] == 6 * (64 // 16)
    assert losses["pix"].iloc[-4:].mean() < losses["pix"].iloc[:4].mean()
    assert record["epochs"] == 6 and record["n_images"] == 64 and len(record["data_hash"]) == 40
    assert not model.encoder.training and not model.decoder.training
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_refinement_is_reproducible(adversarial, faces):
    data = FaceImages.from_array(faces, 32)
    runs = []
    for _ in range(2):
        model = load_latent_model(adversarial)
        refine_decoder(model.encoder, model.decoder, data, epochs=2, lr=1e-3, batch_size=16,
                       seed=3, progress=False)
        runs.append(_tensors(model, "decoder."))
    for k, v in runs[0].items():
        torch.testing.assert_close(runs[1][k], v, rtol=0, atol=0)


def test_refine_saved_model_records_its_source(adversarial, faces, tmp_path):
    data = FaceImages.from_array(faces, 32)
    source = load_latent_model(adversarial)
    refined = refine_saved_model(adversarial, data, tmp_path / "r", epochs=2, lr=1e-3,
                                 batch_size=16, progress=False)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    parent = json.loads((adversarial / "config.json").read_text())
    # saved into an existing folder (in place) and as a new one: readable by the lab
    source.save(tmp_path / "copy")
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    for d in (tmp_path / "r", tmp_path / "copy"):
        for name in ("config.json", "model.safetensors"):
            assert (d / name).stat().st_mode & 0o777 == 0o644, d / name
    assert cfg["training"] == parent["training"]  # the adversarial stage's record is kept
    assert cfg["refinement"]["source_model"]["fingerprint"] == source.fingerprint()
    assert cfg["refinement"]["epochs"] == 2 and (tmp_path / "r" / "refine_losses.csv").is_file()
    loaded = load_latent_model(tmp_path / "r")
    assert loaded.meta["refinement"] == cfg["refinement"]
    np.testing.assert_array_equal(loaded.encode(faces), source.encode(faces))
    np.testing.assert_array_equal(loaded.decode(loaded.encode(faces[:4])),
                                  refined.decode(refined.encode(faces[:4])))
    assert loaded.fingerprint() != source.fingerprint()  # latent caches are keyed anew
    with pytest.raises(UsageError, match="must differ"):
        refine_saved_model(adversarial, data, adversarial, epochs=1, lr=1e-3, progress=False)
    with pytest.raises(UsageError, match="sized"):
        refine_saved_model(adversarial, FaceImages.from_array(face_corpus(4, seed=1, size=16)[0],
                                                              16),
                           tmp_path / "s", epochs=1, lr=1e-3, progress=False)
    with pytest.raises(UsageError, match="cropped"):
        refine_saved_model(adversarial, FaceImages.from_array(faces, 32, crop_factor=0.8),
                           tmp_path / "s", epochs=1, lr=1e-3, progress=False)
    with pytest.raises(UsageError, match="at least one epoch"):
        refine_decoder(source.encoder, source.decoder, data, epochs=0, lr=1e-3, progress=False)


def test_training_with_refinement_resumes_to_the_same_model(faces, tmp_path):
    data = FaceImages.from_array(faces, 32)
    arch = get_arch("tiny", latent_dim=8, image_size=32)
    opts = TrainOptions(epochs=2, batch_size=16, lr=2e-3, device="cpu", progress=False,
                        checkpoint_every=0, refine_epochs=2, refine_lr=1e-3)
    first = train_vaegan(data, tmp_path / "m", arch, opts)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["refinement"]["epochs"] == 2 and cfg["training"]["options"]["refine_epochs"] == 2
    assert len(pd.read_csv(tmp_path / "m" / "refine_losses.csv")) == 2 * (64 // 16)
    # a run interrupted during the refinement resumes from the last adversarial checkpoint
    again = train_vaegan(data, tmp_path / "m", arch, opts, resume=True)
    for k, v in first.state_tensors().items():
        torch.testing.assert_close(again.state_tensors()[k], v, rtol=0, atol=0)


def test_cli_refine_from(adversarial, faces, tmp_path, capsys):
    img_dir = tmp_path / "faces"
    img_dir.mkdir()
    for i, img in enumerate(faces[:32]):
        save_image(img, img_dir / f"F{i:03d}.png")
    base = ["--images", str(img_dir), "--space", "vaegan", "--device", "cpu", "--no-progress",
            "--batch-size", "8"]
    assert main([*base, "--refine-from", str(adversarial), "--refine-epochs", "1",
                 "--out", str(tmp_path / "r")]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["refinement"]["n_images"] == 32 and cfg["refinement"]["steps"] == 4
    assert cfg["refinement"]["command"] and cfg["refinement"]["source_model"]["path"] == str(adversarial)
    main(["--images", str(img_dir), "--space", "pca", "--latent-dim", "4", "--image-size", "32",
          "--device", "cpu", "--out", str(tmp_path / "p")])
    capsys.readouterr()
    assert main([*base, "--refine-from", str(tmp_path / "p"), "--out",
                 str(tmp_path / "x")]) == EXIT_USAGE
    assert "no decoder to refine" in capsys.readouterr().err
    assert main([*base[:2], "--space", "pca", "--refine-from", str(adversarial), "--out",
                 str(tmp_path / "y")]) == EXIT_USAGE
    assert "--space vaegan" in capsys.readouterr().err
    assert main([*base, "--refine-from", str(adversarial), "--refine-epochs", "0", "--out",
                 str(tmp_path / "z")]) == EXIT_USAGE
    assert "at least one epoch" in capsys.readouterr().err
    assert main([*base, "--refine-from", str(adversarial), "--crop-factor", "0.8", "--out",
                 str(tmp_path / "w")]) == EXIT_USAGE
    assert "cropped to 0.8" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    assert not any((tmp_path / d).exists() for d in ("x", "y", "z"))
