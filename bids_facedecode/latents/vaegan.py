"""The VAE-GAN latent model: encoder and decoder of a trained VAE-GAN.

Encoding is deterministic (the posterior mean ``mu``); decoding runs the generator.
Both run in eval mode (batch-norm running statistics), in batches, on the chosen device.
The discriminator is needed only for training and lives in the training checkpoints.

A model of the ``authors`` graph (the authors' published weights) prepares images and
finishes generated ones as the authors' scripts do (:mod:`.vaegan_authors`): photos are read
at their own resolution and go through ``preprocess128``; the images of one :meth:`decode`
call are divided by their maximum and clipped as ``VAEGAN_latent2image.py`` does with the
latents of one ``.mat`` file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..images import load_image
from .base import LatentModel, batches, expect_shapes
from .vaegan_authors import authors_deprocess, authors_preprocess, full_float32_convolutions
from .vaegan_nets import VAEGANArch, build_decoder, build_encoder


class VAEGANModel(LatentModel):
    """Encoder + decoder of a VAE-GAN.

    Parameters
    ----------
    arch : VAEGANArch
    encoder, decoder : torch.nn.Module, optional
        Trained networks; fresh (randomly initialised) ones when omitted.
    crop_factor : float
    device : str or torch.device
    meta : dict, optional
    """

    space = "vaegan"

    def __init__(self, arch: VAEGANArch, encoder: torch.nn.Module | None = None,
                 decoder: torch.nn.Module | None = None, crop_factor: float = 1.0,
                 device: str | torch.device = "cpu", meta: dict[str, Any] | None = None):
        arch.validate()
        self.arch = arch
        self.device = torch.device(device)
        self.encoder = (encoder or build_encoder(arch)).to(self.device).eval()
        self.decoder = (decoder or build_decoder(arch)).to(self.device).eval()
        self.latent_dim = arch.latent_dim
        self.image_size = arch.image_size
        self.crop_factor = float(crop_factor)
        self.meta = dict(meta or {})

    @property
    def authors_graph(self) -> bool:
        """True for the authors' graph (their preprocessing and output normalisation)."""
        return self.arch.graph == "authors"

    def prepare(self, images: np.ndarray) -> np.ndarray:
        if not self.authors_graph:
            return super().prepare(images)
        x = np.asarray(images)
        if x.ndim not in (3, 4):
            raise DataError(f"images: expected an array of shape (N, H, W, 3), got {x.shape}")
        out = np.empty((len(x), self.image_size, self.image_size, 3), np.float32)
        for i, im in enumerate(x):
            out[i] = authors_preprocess(im, self.image_size, self.crop_factor)
        return out

    def encode_paths(self, paths: list, batch_size: int = 256) -> np.ndarray:
        if not self.authors_graph:
            return super().encode_paths(paths, batch_size)
        return self._encode_prepared(self.images_of(paths), batch_size)

    def images_of(self, paths: list) -> np.ndarray:
        if not self.authors_graph:
            return super().images_of(paths)
        x = np.empty((len(paths), self.image_size, self.image_size, 3), np.float32)
        for i, p in enumerate(paths):  # each photo at its own resolution, as the authors did
            x[i] = authors_preprocess(load_image(p), self.image_size, self.crop_factor)
        return x

    def encode(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self._encode_prepared(self.prepare(images), batch_size)

    def _precision(self):
        """The authors' graph runs in full float32 (no TF32 convolutions on the GPU)."""
        return full_float32_convolutions() if self.authors_graph else contextlib.nullcontext()

    @torch.no_grad()
    def _encode_prepared(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        with self._precision():
            return self._encode_batches(x, batch_size)

    def _encode_batches(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        self.encoder.eval()
        out = np.empty((len(x), self.latent_dim), dtype=np.float32)
        for sl in batches(len(x), batch_size):
            xb = torch.from_numpy(x[sl]).to(self.device).permute(0, 3, 1, 2)
            mu, _ = self.encoder(xb)  # float32 (bf16 is for training only)
            out[sl] = mu.float().cpu().numpy()
        return out

    @torch.no_grad()
    def decode(self, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
        z = self.check_latents(latents)
        self.decoder.eval()
        s = self.image_size
        out = np.empty((len(z), s, s, 3), dtype=np.float32)
        for sl in batches(len(z), batch_size):
            with self._precision():
                xb = self.decoder(torch.from_numpy(z[sl]).to(self.device)).float()
            if not self.authors_graph:
                xb = xb.clamp(0, 1)
            out[sl] = xb.permute(0, 2, 3, 1).cpu().numpy()
        return authors_deprocess(out) if self.authors_graph else out

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        tensors.update({f"decoder.{k}": v for k, v in self.decoder.state_dict().items()})
        return tensors

    def config_dict(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"architecture": self.arch.to_dict()}
        if self.meta.get("source"):
            cfg["source"] = self.meta["source"]
        return cfg

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                   device: str | torch.device, source: Path) -> VAEGANModel:
        try:
            arch = VAEGANArch.from_dict(config.get("architecture", {}))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{source / 'config.json'}: bad VAE-GAN architecture ({exc})") from exc
        if arch.latent_dim != config["latent_dim"] or arch.image_size != config["image_size"]:
            raise DataError(f"{source / 'config.json'}: architecture disagrees with "
                            "latent_dim/image_size")
        enc, dec = build_encoder(arch), build_decoder(arch)
        expected = {f"encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
        expected.update({f"decoder.{k}": tuple(v.shape) for k, v in dec.state_dict().items()})
        expect_shapes(tensors, expected, source)
        enc.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
        dec.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
        return cls(arch, enc, dec, crop_factor=float(config.get("crop_factor", 1.0)),
                   device=device, meta={"training": config.get("training", {}),
                                        "refinement": config.get("refinement", {}),
                                        "source": config.get("source", {})})
