"""The VAE-GAN latent model: encoder and decoder of a trained VAE-GAN.

Encoding is deterministic (the posterior mean ``mu``); decoding runs the generator.
Both run in eval mode (batch-norm running statistics), in batches, on the chosen device.
The discriminator is needed only for training and lives in the training checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import LatentModel, batches, expect_shapes
from .vaegan_nets import Decoder, Encoder, VAEGANArch


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

    def __init__(self, arch: VAEGANArch, encoder: Encoder | None = None,
                 decoder: Decoder | None = None, crop_factor: float = 1.0,
                 device: str | torch.device = "cpu", meta: dict[str, Any] | None = None):
        arch.validate()
        self.arch = arch
        self.device = torch.device(device)
        self.encoder = (encoder or Encoder(arch)).to(self.device).eval()
        self.decoder = (decoder or Decoder(arch)).to(self.device).eval()
        self.latent_dim = arch.latent_dim
        self.image_size = arch.image_size
        self.crop_factor = float(crop_factor)
        self.meta = dict(meta or {})

    @torch.no_grad()
    def encode(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = self.prepare(images)
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
            xb = self.decoder(torch.from_numpy(z[sl]).to(self.device))
            out[sl] = xb.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return out

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        tensors.update({f"decoder.{k}": v for k, v in self.decoder.state_dict().items()})
        return tensors

    def config_dict(self) -> dict[str, Any]:
        return {"architecture": self.arch.to_dict()}

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
        enc, dec = Encoder(arch), Decoder(arch)
        expected = {f"encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
        expected.update({f"decoder.{k}": tuple(v.shape) for k, v in dec.state_dict().items()})
        expect_shapes(tensors, expected, source)
        enc.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
        dec.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("decoder.")})
        return cls(arch, enc, dec, crop_factor=float(config.get("crop_factor", 1.0)),
                   device=device, meta={"training": config.get("training", {}),
                                        "refinement": config.get("refinement", {})})
