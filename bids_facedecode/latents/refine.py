"""Second training stage of the VAE-GAN: the decoder refined on the encoder's posterior means.

The app encodes an image deterministically, as the posterior mean ``mu`` (see
:class:`~bids_facedecode.latents.vaegan.VAEGANModel`), and reconstructs decoded latents through
the decoder. The adversarial stage, however, trains the decoder on noisy samples
``z = mu + sigma * eps`` and pulls it towards the discriminator's features and the GAN term, so
``G(mu)`` is not the decoder's best reconstruction of ``x`` from ``mu``. This stage keeps the
encoder (hence the latent space and every encoding) fixed and fits the decoder to
``x ≈ G(mu(x))`` by pixel mean squared error, starting from the adversarial decoder.
Batch-norm statistics stay frozen (the decoder runs in eval mode): re-estimating them from
small batches undid the adversarial decoder's calibration in our tests.

On the simulator's corpus this took the shipped small model's held-out pixel correlation from
0.9942 to above PCA's at the same D (``docs/models.md`` has the figures). Same code on CPU and
CUDA (bf16 autocast on CUDA); seeded, so a run is reproducible on the same device type.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import DataError, UsageError
from .base import command_line, data_hash
from .datasets import EpochSampler, FaceImages, epoch_loader
from .vaegan import VAEGANModel

log = logging.getLogger("bids_facedecode.latents")

REFINE_LOSSES = "refine_losses.csv"
REFINE_COLUMNS = ("step", "epoch", "images", "pix", "lr", "seconds")
# the refinement draws its batches and flips from seed + this, not the adversarial stage's
SEED_OFFSET = 1_000_003


def refine_decoder(encoder: torch.nn.Module, decoder: torch.nn.Module, data: FaceImages,
                   epochs: int, lr: float, batch_size: int = 64, lr_decay: float = 0.95,
                   hflip: bool = True, seed: int = 0, workers: int = 0,
                   device: torch.device | str = "cpu", log_path: Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Fit ``decoder`` to ``x ≈ decoder(encoder(x).mu)`` by pixel MSE; ``encoder`` is unchanged.

    Parameters
    ----------
    encoder, decoder : torch.nn.Module
        The VAE-GAN's networks, on ``device``. ``decoder`` is updated in place; both are left in
        eval mode (batch-norm statistics are not re-estimated).
    data : FaceImages
        Training images (``(3, S, S)`` items in [0, 1]), streamed with a DataLoader.
    epochs : int
        Passes over ``data`` (> 0).
    lr : float
        Adam learning rate of the first epoch, times ``lr_decay`` per epoch.
    batch_size, lr_decay, hflip, seed, workers :
        As in the adversarial stage (:class:`~bids_facedecode.latents.train.TrainOptions`).
    device : torch.device or str
    log_path : Path, optional
        ``refine_losses.csv``: one row per optimiser step (``REFINE_COLUMNS``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The record saved as ``config.json``'s ``refinement``: epochs, lr, steps, seconds,
        device, seed, data hash, final pixel loss, command line and date.
    """
    if epochs < 1:
        raise UsageError(f"decoder refinement needs at least one epoch, got {epochs}")
    n = len(data)
    batch_size = min(batch_size, n)
    if batch_size < 2:
        raise DataError(f"{data.source}: need at least 2 training images, found {n}")
    device = torch.device(device)
    torch.manual_seed(seed + SEED_OFFSET)
    if device.type == "cuda":  # as the adversarial stage: reproducible on the same GPU type
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    encoder.eval()
    decoder.eval()
    frozen = [(p, p.requires_grad) for p in encoder.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    opt = torch.optim.Adam(decoder.parameters(), lr=lr, betas=(0.5, 0.999))
    sampler = EpochSampler(n, batch_size, seed + SEED_OFFSET, hflip)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    step, images, elapsed, pix = 0, 0, 0.0, float("nan")
    fh = open(log_path, "w", newline="") if log_path is not None else None  # noqa: SIM115
    writer = csv.DictWriter(fh, fieldnames=REFINE_COLUMNS) if fh is not None else None
    if writer is not None:
        writer.writeheader()
    bar = tqdm(total=epochs * sampler.batches_per_epoch, disable=not progress, unit="step",
               dynamic_ncols=True, desc="refine decoder")
    try:
        for epoch in range(epochs):
            epoch_lr = lr * lr_decay**epoch
            for g in opt.param_groups:
                g["lr"] = epoch_lr
            t0 = time.perf_counter()
            for x in epoch_loader(data, sampler, epoch, workers, device, seed + SEED_OFFSET):
                x = x.to(device, non_blocking=True)
                with torch.no_grad(), amp:
                    mu, _ = encoder(x)
                with amp:
                    rec = decoder(mu.float())
                loss = F.mse_loss(rec.float(), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                pix = loss.item()
                step, images = step + 1, images + len(x)
                now = time.perf_counter()
                elapsed, t0 = elapsed + now - t0, now
                if writer is not None:
                    writer.writerow({"step": step, "epoch": epoch, "images": images,
                                     "pix": f"{pix:.6g}", "lr": f"{epoch_lr:.6g}",
                                     "seconds": round(elapsed, 3)})
                bar.update(1)
                bar.set_postfix(pix=f"{pix:.5f}", refresh=False)
            if fh is not None:
                fh.flush()
            log.info("refinement epoch %d/%d: step %d, pix %.6f, %.0f img/s", epoch + 1, epochs,
                     step, pix, images / max(elapsed, 1e-9))
    finally:
        bar.close()
        if fh is not None:
            fh.close()
        for p, flag in frozen:
            p.requires_grad_(flag)
    decoder.eval()
    return {"epochs": int(epochs), "lr": float(lr), "lr_decay": float(lr_decay),
            "batch_size": int(batch_size), "hflip": bool(hflip), "seed": int(seed),
            "steps": step, "seconds": round(elapsed, 1), "device": str(device),
            "data_hash": data_hash(data.hashes), "n_images": n, "image_source": data.source,
            "final_pix": pix, "loss": "pixel MSE of decoder(mu) (encoder and batch-norm "
            "statistics frozen)", "command": command_line(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def refine_saved_model(source: str | Path, data: FaceImages, out_dir: str | Path, epochs: int,
                       lr: float, batch_size: int = 64, lr_decay: float = 0.95,
                       hflip: bool = True, seed: int = 0, workers: int = 0,
                       device: torch.device | str = "cpu", progress: bool = True,
                       model: VAEGANModel | None = None) -> VAEGANModel:
    """Refine the decoder of a saved VAE-GAN (:func:`refine_decoder`) and save the result.

    The new model keeps the source's encoder (identical encodings), its architecture and its
    ``training`` record, and adds a ``refinement`` record naming the source model.

    Parameters
    ----------
    source : path-like
        A VAE-GAN model directory.
    data : FaceImages
        Sized and cropped as the model expects (``image_size``, ``crop_factor``).
    out_dir : path-like
        Model directory to write (not ``source``); receives ``refine_losses.csv`` too.
    epochs, lr, batch_size, lr_decay, hflip, seed, workers, device, progress :
        See :func:`refine_decoder`.
    model : VAEGANModel, optional
        ``source`` already loaded on ``device`` (read from ``source`` otherwise); its decoder is
        refined in place.

    Returns
    -------
    VAEGANModel
    """
    source, out_dir = Path(source), Path(out_dir)
    if epochs < 1:
        raise UsageError(f"decoder refinement needs at least one epoch, got {epochs}")
    if out_dir.resolve() == source.resolve():
        raise UsageError(f"--out {out_dir}: must differ from the model being refined")
    if model is None:
        model = VAEGANModel.load(source, device=device)
    if data.size != model.image_size:
        raise UsageError(f"images are sized {data.size}, {source} expects {model.image_size}")
    if abs(data.crop_factor - model.crop_factor) > 1e-9:
        raise UsageError(f"images are cropped to {data.crop_factor:g} of their square, {source} "
                         f"encodes them cropped to {model.crop_factor:g} (--crop-factor)")
    if model.meta.get("refinement"):
        log.warning("%s: decoder already refined; refining it again", source)
    parent = model.fingerprint()
    out_dir.mkdir(parents=True, exist_ok=True)
    record = refine_decoder(model.encoder, model.decoder, data, epochs, lr, batch_size,
                            lr_decay, hflip, seed, workers, model.device,
                            out_dir / REFINE_LOSSES, progress)
    record["source_model"] = {"path": str(source), "fingerprint": parent}
    # a new instance: the source's fingerprint (cached on it) no longer describes the decoder
    refined = VAEGANModel(model.arch, model.encoder, model.decoder,
                          crop_factor=model.crop_factor, device=model.device,
                          meta={**model.meta, "refinement": record})
    refined.save(out_dir)
    return refined
