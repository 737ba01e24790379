"""VAE-GAN: architecture sizes, training (losses fall), deterministic encode, save/load,
resume, the CUDA path (skipped without a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bids_facedecode.errors import DataError, UsageError
from bids_facedecode.latents.datasets import EpochSampler, FaceImages
from bids_facedecode.latents.registry import load_latent_model
from bids_facedecode.latents.train import TrainOptions, kl_divergence, train_vaegan
from bids_facedecode.latents.vaegan import VAEGANModel
from bids_facedecode.latents.vaegan_nets import (
    ARCHS,
    Decoder,
    Discriminator,
    Encoder,
    count_parameters,
    get_arch,
)
from bids_facedecode.simulate.faces import face_corpus

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device")])]


@pytest.fixture(scope="module")
def corpus():
    images, params = face_corpus(96, seed=5, size=32)
    return images, params


def _opts(device="cpu", **kw):
    base = dict(epochs=2, batch_size=16, lr=2e-3, device=device, progress=False, seed=0,
                checkpoint_every=0)
    base.update(kw)
    return TrainOptions(**base)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_architectures_have_the_stated_shapes(name):
    arch = ARCHS[name]
    enc, dec, disc = Encoder(arch), Decoder(arch), Discriminator(arch)
    x = torch.rand(2, 3, arch.image_size, arch.image_size)
    with torch.no_grad():
        mu, logvar = enc(x)
        y = dec(mu)
        feats, logits = disc(y)
    assert mu.shape == logvar.shape == (2, arch.latent_dim)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert logits.shape == (2,) and feats.ndim == 4


def test_paper_and_small_architectures():
    paper = ARCHS["paper"]
    assert (paper.image_size, paper.latent_dim, paper.enc_channels, paper.enc_dense) == \
        (128, 1024, (192, 256, 384, 512, 768), 1024)
    conv_w = [m.weight for m in Encoder(paper).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(w.shape[2:]) for w in conv_w] == [(3, 3)] * 5
    small = ARCHS["small"]
    n_bytes = 4 * (count_parameters(Encoder(small)) + count_parameters(Decoder(small)))
    assert small.image_size == 64 and small.latent_dim == 128 and n_bytes < 20e6
    with pytest.raises(ValueError, match="divisible"):
        get_arch("small", image_size=40)


def test_kl_divergence_closed_form():
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.tensor([[np.log(2.0), 0.0]], dtype=torch.float32)
    # KL(N(m, s2) || N(0, 1)) = 0.5 (s2 + m^2 - 1 - ln s2)
    expected = 0.5 * (2 + 0.25 - 1 - np.log(2)) + 0.5 * (1 + 1 - 1 - 0)
    assert float(kl_divergence(mu, logvar)[0]) == pytest.approx(expected, rel=1e-6)


def test_sampler_is_deterministic_and_resumable():
    s = EpochSampler(10, 3, seed=1)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 9 and len({i for i, _ in full}) == 9
    s.set_epoch(2, start_batch=1)
    assert list(s) == full[3:]
    s.set_epoch(3)
    assert list(s) != full


@pytest.mark.parametrize("device", DEVICES)
def test_training_reduces_losses_and_round_trips(tmp_path, corpus, device):
    images, _ = corpus
    arch = get_arch("tiny", latent_dim=8, image_size=32)
    data = FaceImages.from_array(images, arch.image_size)
    model = train_vaegan(data, tmp_path / "m", arch, _opts(device, epochs=8))
    losses = pd.read_csv(tmp_path / "m" / "losses.csv")
    assert len(losses) == 8 * (96 // 16)
    first, last = losses["pix"].iloc[:6].mean(), losses["pix"].iloc[-6:].mean()
    assert last < 0.6 * first, (first, last)
    assert np.isfinite(losses[["feat", "kl", "gan_d", "gan_g"]].to_numpy()).all()
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["kind"] == "vaegan" and cfg["architecture"]["name"] == "tiny"
    assert cfg["training"]["n_images"] == 96 and cfg["training"]["epochs"] == 8
    assert len(cfg["training"]["data_hash"]) == 40
    # encode is deterministic (posterior mean); save -> load gives identical outputs
    z1, z2 = model.encode(images[:10]), model.encode(images[:10])
    np.testing.assert_array_equal(z1, z2)
    loaded = load_latent_model(tmp_path / "m", device=device)
    assert isinstance(loaded, VAEGANModel)
    np.testing.assert_array_equal(loaded.encode(images[:10]), z1)
    rec = loaded.decode(z1)
    np.testing.assert_array_equal(rec, model.decode(z1))
    assert rec.shape == (10, 32, 32, 3) and rec.dtype == np.float32
    assert rec.min() >= 0 and rec.max() <= 1


def test_resume_continues_exactly(tmp_path, corpus):
    images, _ = corpus
    arch = get_arch("tiny")
    data = FaceImages.from_array(images, arch.image_size)
    straight = train_vaegan(data, tmp_path / "a", arch, _opts(epochs=3))
    # interrupted after 8 steps (mid-epoch 2), then resumed
    opts = _opts(epochs=3, checkpoint_every=4)
    train_vaegan(data, tmp_path / "b", arch, opts, max_steps=8)
    assert not (tmp_path / "b" / "config.json").exists()
    with pytest.raises(UsageError, match="--resume"):
        train_vaegan(data, tmp_path / "b", arch, opts)
    resumed = train_vaegan(data, tmp_path / "b", arch, opts, resume=True)
    for k, v in straight.state_tensors().items():
        torch.testing.assert_close(resumed.state_tensors()[k], v, rtol=0, atol=0)
    la = pd.read_csv(tmp_path / "a" / "losses.csv")
    lb = pd.read_csv(tmp_path / "b" / "losses.csv")
    assert list(lb["step"]) == list(la["step"])
    np.testing.assert_array_equal(la["pix"].to_numpy(), lb["pix"].to_numpy())
    other = FaceImages.from_array(images[:48], arch.image_size)
    train_vaegan(other, tmp_path / "c", arch, opts, max_steps=4)
    with pytest.raises(UsageError, match="other images"):
        train_vaegan(data, tmp_path / "c", arch, opts, resume=True)


def test_folder_dataset_crops_and_resizes(tmp_path, corpus):
    from bids_facedecode.images import save_image

    images, _ = corpus
    for i in range(4):
        wide = np.concatenate([np.zeros((32, 8, 3)), images[i], np.ones((32, 8, 3))], axis=1)
        save_image(wide, tmp_path / f"F{i}.png")
    data = FaceImages.from_folder(tmp_path, 16)
    assert len(data) == 4 and data[0].shape == (3, 16, 16)
    ref = FaceImages.from_array(images[:4], 16)
    assert float(torch.abs(data[0] - ref[0]).mean()) < 0.02  # the padding was cropped away
    assert torch.equal(data[(1, True)], torch.flip(data[1], dims=(2,)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        FaceImages.from_folder(tmp_path / "empty", 16)


def test_model_rejects_wrong_architecture(tmp_path):
    model = VAEGANModel(get_arch("tiny"))
    model.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["architecture"]["enc_channels"] = [8, 32]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="has shape"):
        load_latent_model(tmp_path / "m")
    cfg["architecture"]["bogus"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DataError, match="bad VAE-GAN architecture"):
        VAEGANModel.load(tmp_path / "m")
