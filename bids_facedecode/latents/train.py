"""Training latent models: the VAE-GAN loop (Larsen et al. 2016) and PCA fitting.

VAE-GAN losses, per batch ``x`` with ``(mu, logvar) = E(x)``, ``z = mu + sigma * eps``,
``x̃ = G(z)``, ``x_p = G(z_p)`` with ``z_p ~ N(0, I)`` and discriminator ``D`` whose last
conv layer gives features ``D_l``:

* ``pix  = mean (x̃ - x)²``                                   (pixel term, stabilises)
* ``feat = mean (D_l(x̃) - D_l(x))²``                          (Larsen's learned similarity)
* ``kl   = mean_batch sum_d KL(q(z|x) || N(0, I)) / (3 S²)``  (per pixel element)
* ``gan_d = BCE(D(x), 1) + (BCE(D(x̃), 0) + BCE(D(x_p), 0)) / 2``
* ``gan_g = (BCE(D(x̃), 1) + BCE(D(x_p), 1)) / 2``             (non-saturating)

Encoder: ``kl_weight·kl + pix + feat_weight·feat``; decoder: ``pix + feat_weight·feat +
adv_weight·gan_g``; discriminator: ``gan_d``; three Adam optimisers. The equilibrium
heuristic pauses the discriminator when it wins too clearly and the decoder's GAN term
when it loses too clearly. Same code on CPU and CUDA (bf16 autocast on CUDA).
With ``refine_epochs``, a second stage then fits the decoder to the encoder's posterior means
(:mod:`bids_facedecode.latents.refine`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..device import select_device
from ..errors import DataError, UsageError
from .base import CONFIG_NAME, command_line, data_hash
from .datasets import EpochSampler, FaceImages, epoch_loader
from .pca import PCAModel
from .refine import REFINE_LOSSES, refine_decoder
from .vaegan import VAEGANModel
from .vaegan_nets import Decoder, Discriminator, Encoder, VAEGANArch

log = logging.getLogger("bids_facedecode.latents")

LOSS_COLUMNS = ("step", "epoch", "images", "pix", "feat", "kl", "gan_g", "gan_d", "d_real",
                "d_fake", "train_disc", "train_adv", "seconds")
CKPT_DIR = "checkpoints"


@dataclass
class TrainOptions:
    """How to train a VAE-GAN (everything except the architecture and the data)."""

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    kl_weight: float = 0.0001
    feat_weight: float = 0.01
    adv_weight: float = 0.0001
    equilibrium: float = 0.68
    margin: float = 0.35
    lr_decay: float = 0.95          # multiplicative, per epoch
    hflip: bool = True
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1000    # optimiser steps; and at each epoch end
    keep_checkpoints: int = 2
    progress: bool = True
    refine_epochs: int = 0          # second stage: decoder refined on the posterior means
    refine_lr: float = 1e-4


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state, seeded for third-party code
    torch.manual_seed(seed)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over dims, per sample: ``(N,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


class VAEGANTrainer:
    """Holds the three networks and optimisers; :meth:`step` trains on one batch."""

    def __init__(self, arch: VAEGANArch, opts: TrainOptions, device: torch.device):
        self.arch, self.opts, self.device = arch, opts, device
        self.enc = Encoder(arch).to(device)
        self.dec = Decoder(arch).to(device)
        self.disc = Discriminator(arch).to(device)
        betas = (0.5, 0.999)
        self.opt_enc = torch.optim.Adam(self.enc.parameters(), lr=opts.lr, betas=betas)
        self.opt_dec = torch.optim.Adam(self.dec.parameters(), lr=opts.lr, betas=betas)
        self.opt_disc = torch.optim.Adam(self.disc.parameters(), lr=opts.lr, betas=betas)
        self.n_el = 3 * arch.image_size**2

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_enc, self.opt_dec, self.opt_disc):
            for g in opt.param_groups:
                g["lr"] = lr

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a batch ``(B, 3, S, S)``; returns the losses."""
        o = self.opts
        for m in (self.enc, self.dec, self.disc):
            m.train()
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with amp:
            mu, logvar = self.enc(x)
            mu, logvar = mu.float(), logvar.float()
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            z_p = torch.randn_like(mu)
            x_both = self.dec(torch.cat([z, z_p])).float()
            x_rec, x_p = x_both[: len(x)], x_both[len(x):]
            feats, logits = self.disc(torch.cat([x, x_rec, x_p]))
        feats, logits = feats.float(), logits.float()
        b = len(x)
        f_real, f_rec = feats[:b], feats[b:2 * b]
        l_real, l_rec, l_p = logits[:b], logits[b:2 * b], logits[2 * b:]
        ones, zeros = torch.ones_like(l_real), torch.zeros_like(l_real)

        pix = F.mse_loss(x_rec, x)
        feat = F.mse_loss(f_rec, f_real.detach())
        kl = kl_divergence(mu, logvar).mean() / self.n_el
        gan_g = 0.5 * (F.binary_cross_entropy_with_logits(l_rec, ones)
                       + F.binary_cross_entropy_with_logits(l_p, ones))
        d_real = F.binary_cross_entropy_with_logits(l_real, ones)
        d_fake = 0.5 * (F.binary_cross_entropy_with_logits(l_rec, zeros)
                        + F.binary_cross_entropy_with_logits(l_p, zeros))
        gan_d = d_real + d_fake

        eq, m = o.equilibrium, o.margin
        train_disc = not (d_real.item() < eq - m or d_fake.item() < eq - m)
        train_adv = not (d_real.item() > eq + m or d_fake.item() > eq + m)
        if not (train_disc or train_adv):
            train_disc = train_adv = True

        loss_enc = o.kl_weight * kl + pix + o.feat_weight * feat
        loss_dec = pix + o.feat_weight * feat + (o.adv_weight * gan_g if train_adv else 0.0)
        enc_p, dec_p, disc_p = (list(self.enc.parameters()), list(self.dec.parameters()),
                                list(self.disc.parameters()))
        g_enc = torch.autograd.grad(loss_enc, enc_p, retain_graph=True)
        g_dec = torch.autograd.grad(loss_dec, dec_p, retain_graph=train_disc)
        g_disc = torch.autograd.grad(gan_d, disc_p) if train_disc else None
        for params, grads, opt in ((enc_p, g_enc, self.opt_enc), (dec_p, g_dec, self.opt_dec),
                                   (disc_p, g_disc, self.opt_disc)):
            if grads is None:
                continue
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
            opt.zero_grad(set_to_none=True)
        return {"pix": pix.item(), "feat": feat.item(), "kl": kl.item() * self.n_el,
                "gan_g": gan_g.item(), "gan_d": gan_d.item(), "d_real": d_real.item(),
                "d_fake": d_fake.item(), "train_disc": int(train_disc),
                "train_adv": int(train_adv)}

    # --------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        st = {name: getattr(self, name).state_dict()
              for name in ("enc", "dec", "disc", "opt_enc", "opt_dec", "opt_disc")}
        st["torch_rng"] = torch.random.get_rng_state()
        if self.device.type == "cuda":
            st["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        for name in ("enc", "dec", "disc", "opt_enc", "opt_dec", "opt_disc"):
            getattr(self, name).load_state_dict(st[name])
        torch.random.set_rng_state(st["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in st:
            torch.cuda.set_rng_state(st["cuda_rng"], self.device)


def _latest_checkpoint(out_dir: Path) -> Path | None:
    ckpts = sorted((out_dir / CKPT_DIR).glob("step-*.pt"))
    return ckpts[-1] if ckpts else None


def _save_checkpoint(out_dir: Path, trainer: VAEGANTrainer, meta: dict[str, Any], keep: int) -> Path:
    ck_dir = out_dir / CKPT_DIR
    ck_dir.mkdir(parents=True, exist_ok=True)
    path = ck_dir / f"step-{meta['step']:09d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"trainer": trainer.state(), **meta}, tmp)
    os.replace(tmp, path)
    for old in sorted(ck_dir.glob("step-*.pt"))[:-keep]:
        old.unlink()
    return path


class LossLog:
    """``losses.csv``: one row per optimiser step (appended and flushed as training goes)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        rows = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        self.fh = open(path, "w", newline="")  # noqa: SIM115 - closed by close()
        self.writer = csv.DictWriter(self.fh, fieldnames=LOSS_COLUMNS)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                              for k, v in row.items() if k in LOSS_COLUMNS})
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def train_vaegan(data: FaceImages, out_dir: str | Path, arch: VAEGANArch,
                 opts: TrainOptions | None = None, resume: bool = False,
                 max_steps: int | None = None) -> VAEGANModel:
    """Train a VAE-GAN on ``data`` and save it to ``out_dir``.

    Parameters
    ----------
    data : FaceImages
        Training images (sized to ``arch.image_size``).
    out_dir : path-like
        Receives ``config.json``, ``model.safetensors``, ``losses.csv``, ``checkpoints/``
        and, with ``opts.refine_epochs``, ``refine_losses.csv``.
    arch : VAEGANArch
    opts : TrainOptions
    resume : bool
        Continue from the latest checkpoint in ``out_dir/checkpoints``. The decoder
        refinement (``opts.refine_epochs``) has no checkpoints of its own: an interrupted one
        starts again from the last adversarial epoch's checkpoint (same result).
    max_steps : int, optional
        Stop after this many optimiser steps in total (tests, benchmarks); no model is
        saved when the run stops early.

    Returns
    -------
    VAEGANModel
        The trained model (on the training device).
    """
    opts = opts or TrainOptions()
    out_dir = Path(out_dir)
    if data.size != arch.image_size:
        raise UsageError(f"images are sized {data.size}, architecture expects {arch.image_size}")
    device = select_device(opts.device)
    n = len(data)
    batch_size = min(opts.batch_size, n)
    if batch_size < 2:
        raise DataError(f"{data.source}: need at least 2 training images, found {n}")
    d_hash = data_hash(data.hashes)
    latest = _latest_checkpoint(out_dir)
    if latest is not None and not resume:
        raise UsageError(f"{out_dir / CKPT_DIR}: holds checkpoints of an earlier run; pass "
                         "--resume to continue it or choose another --out")
    if resume and latest is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", out_dir / CKPT_DIR)

    seed_everything(opts.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    trainer = VAEGANTrainer(arch, opts, device)
    epoch, start_batch, step, images_seen, elapsed = 0, 0, 0, 0, 0.0
    if resume and latest is not None:
        ck = torch.load(latest, map_location=device, weights_only=False)
        if ck["arch"] != arch.to_dict():
            raise UsageError(f"{latest}: checkpoint architecture differs from the requested one")
        if ck["data_hash"] != d_hash:
            raise UsageError(f"{latest}: checkpoint was trained on other images "
                             f"(data hash {ck['data_hash'][:10]} != {d_hash[:10]})")
        trainer.load_state(ck["trainer"])
        epoch, start_batch, step = ck["epoch"], ck["next_batch"], ck["step"]
        images_seen, elapsed = ck["images"], ck["seconds"]
        log.info("resumed from %s (epoch %d, step %d)", latest.name, epoch, step)

    out_dir.mkdir(parents=True, exist_ok=True)
    losses = LossLog(out_dir / "losses.csv", step if resume and latest is not None else None)
    sampler = EpochSampler(n, batch_size, opts.seed, opts.hflip)
    per_epoch = sampler.batches_per_epoch

    def ckpt_meta(next_epoch: int, next_batch: int) -> dict[str, Any]:
        return {"arch": arch.to_dict(), "options": dataclasses.asdict(opts), "data_hash": d_hash,
                "epoch": next_epoch, "next_batch": next_batch, "step": step,
                "images": images_seen, "seconds": elapsed}

    last: dict[str, float] = {}
    stopped = False
    bar = tqdm(total=opts.epochs * per_epoch, initial=step, disable=not opts.progress,
               unit="step", dynamic_ncols=True)
    try:
        while epoch < opts.epochs and not stopped:
            trainer.set_lr(opts.lr * opts.lr_decay**epoch)
            loader = epoch_loader(data, sampler, epoch, opts.workers, device, opts.seed,
                                  start_batch)
            b = start_batch
            t0 = time.perf_counter()
            for x in loader:
                x = x.to(device, non_blocking=True)
                last = trainer.step(x)
                step, b, images_seen = step + 1, b + 1, images_seen + len(x)
                now = time.perf_counter()
                elapsed, t0 = elapsed + now - t0, now
                losses.write({"step": step, "epoch": epoch, "images": images_seen,
                              "seconds": round(elapsed, 3), **last})
                bar.update(1)
                bar.set_postfix(pix=f"{last['pix']:.4f}", kl=f"{last['kl']:.0f}",
                                d=f"{last['gan_d']:.2f}", refresh=False)
                if max_steps is not None and step >= max_steps:
                    stopped = True
                    break
                if opts.checkpoint_every and step % opts.checkpoint_every == 0 and b < per_epoch:
                    _save_checkpoint(out_dir, trainer, ckpt_meta(epoch, b), opts.keep_checkpoints)
            if stopped and b < per_epoch:
                _save_checkpoint(out_dir, trainer, ckpt_meta(epoch, b), opts.keep_checkpoints)
                break
            epoch, start_batch = epoch + 1, 0
            _save_checkpoint(out_dir, trainer, ckpt_meta(epoch, 0), opts.keep_checkpoints)
            log.info("epoch %d/%d: step %d, pix %.5f, feat %.4f, kl %.1f, D %.3f, %.0f img/s",
                     epoch, opts.epochs, step, last.get("pix", np.nan), last.get("feat", np.nan),
                     last.get("kl", np.nan), last.get("gan_d", np.nan),
                     images_seen / max(elapsed, 1e-9))
    finally:
        bar.close()
        losses.close()

    meta = {"training": {
        "data_hash": d_hash, "n_images": n, "image_source": data.source, "seed": opts.seed,
        "epochs": opts.epochs, "steps": step, "completed": epoch >= opts.epochs,
        "options": dataclasses.asdict(opts), "device": str(device),
        "seconds": round(elapsed, 1), "final_losses": last, "command": command_line(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }}
    if epoch >= opts.epochs and opts.refine_epochs:
        # after the last epoch's checkpoint: an interrupted refinement resumes from there
        meta["refinement"] = refine_decoder(
            trainer.enc, trainer.dec, data, opts.refine_epochs, opts.refine_lr, batch_size,
            opts.lr_decay, opts.hflip, opts.seed, opts.workers, device,
            out_dir / REFINE_LOSSES, opts.progress)
    model = VAEGANModel(arch, trainer.enc, trainer.dec, crop_factor=data.crop_factor,
                        device=device, meta=meta)
    if epoch >= opts.epochs:
        model.save(out_dir)
        log.info("saved %s", out_dir / CONFIG_NAME)
    return model


def train_pca(data: FaceImages, out_dir: str | Path, n_components: int = 1024,
              whiten: bool = False, method: str = "auto", device: str = "auto",
              seed: int = 0, workers: int = 0) -> PCAModel:
    """Fit PCA on ``data`` and save it (plus ``pca_spectrum.csv``) to ``out_dir``.

    Returns
    -------
    PCAModel
    """
    dev = select_device(device)
    t0 = time.perf_counter()
    images = data.load_all(workers=workers)
    meta = {"training": {
        "data_hash": data_hash(data.hashes), "n_images": len(data), "image_source": data.source,
        "seed": seed, "epochs": None, "device": str(dev), "command": command_line(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }}
    model = PCAModel.fit(images, n_components=n_components, image_size=data.size, whiten=whiten,
                         crop_factor=1.0, method=method, device=dev, seed=seed, meta=meta)
    model.crop_factor = data.crop_factor  # the images were cropped when loaded
    model.meta["training"]["seconds"] = round(time.perf_counter() - t0, 1)
    if model.latent_dim < n_components:
        log.warning("PCA: %d components requested, capped at %d (corpus size)",
                    n_components, model.latent_dim)
    model.save(out_dir)
    var = model.explained_variance.cpu().numpy().astype(np.float64)
    total = float(np.var(images.reshape(len(images), -1), axis=0, ddof=1).sum())
    with open(Path(out_dir) / "pca_spectrum.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["component", "explained_variance", "explained_variance_ratio", "cumulative"])
        cum = 0.0
        for i, v in enumerate(var, start=1):
            cum += v / total
            w.writerow([i, f"{v:.6g}", f"{v / total:.6g}", f"{cum:.6g}"])
    return model
