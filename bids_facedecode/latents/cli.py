"""``bids_facedecode-train-latents``: train a PCA or VAE-GAN latent model on face images.

Example::

    bids_facedecode-train-latents --images faces/ --space vaegan --arch small \\
        --out models/vaegan --epochs 20 --device auto
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bids_facedecode.argtypes import nonneg_int as _nonneg_int
from bids_facedecode.argtypes import positive_float as _positive_float
from bids_facedecode.argtypes import positive_int as _positive_int

from ..config import DEVICE_CHOICES, LATENT_SPACES
from ..device import select_device
from ..errors import EXIT_FAILURE, EXIT_SUCCESS, FaceDecodeError, UsageError
from .datasets import FaceImages
from .refine import refine_saved_model
from .registry import load_latent_model
from .train import TrainOptions, train_pca, train_vaegan
from .vaegan import VAEGANModel
from .vaegan_nets import TRAINABLE, get_arch

#: epochs of ``--refine-from`` when ``--refine-epochs`` is not given
REFINE_FROM_EPOCHS = 10


def _fraction(value: str) -> float:
    v = _positive_float(value)
    if v > 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the training command."""
    d = TrainOptions()
    p = argparse.ArgumentParser(
        prog="bids_facedecode-train-latents",
        description="Train a latent face model (PCA eigenfaces or a VAE-GAN) on a folder of face "
                    "images and save it as config.json + model.safetensors.")
    p.add_argument("--images", required=True, type=Path,
                   help="folder of face images (jpg/png/..., any size, searched recursively); "
                        "each is centre-cropped to a square and resized")
    p.add_argument("--space", required=True, choices=LATENT_SPACES)
    p.add_argument("--out", required=True, type=Path, help="model directory to write")
    p.add_argument("--arch", default="small", choices=sorted(TRAINABLE),
                   help="VAE-GAN architecture (paper: 128x128, D=1024; small: 64x64, D=128)")
    p.add_argument("--latent-dim", type=_positive_int, default=None,
                   help="D (default: the architecture's; PCA: 128)")
    p.add_argument("--image-size", type=_positive_int, default=None,
                   help="image side (default: the architecture's; PCA: 64)")
    p.add_argument("--crop-factor", type=_fraction, default=None,
                   help="fraction of the centred square kept before resizing (the paper used 0.8 "
                        "on CelebA photos; default 1.0, or the refined model's with --refine-from)")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--lr", type=_positive_float, default=d.lr)
    p.add_argument("--kl-weight", type=float, default=d.kl_weight)
    p.add_argument("--feat-weight", type=float, default=d.feat_weight)
    p.add_argument("--adv-weight", type=float, default=d.adv_weight)
    p.add_argument("--refine-epochs", type=_nonneg_int, default=None,
                   help="VAE-GAN: epochs of a second stage that fits the decoder to the encoder's "
                        "posterior means (pixel MSE; encoder and latent space unchanged); "
                        f"default {d.refine_epochs} (off), {REFINE_FROM_EPOCHS} with --refine-from")
    p.add_argument("--refine-lr", type=_positive_float, default=d.refine_lr,
                   help=f"learning rate of the decoder refinement (default {d.refine_lr:g})")
    p.add_argument("--refine-from", type=Path, default=None, metavar="MODEL_DIR",
                   help="VAE-GAN: skip the adversarial training and only refine the decoder of "
                        "this saved model on --images; written to --out")
    p.add_argument("--no-flip", action="store_true", help="no left-right flip augmentation")
    p.add_argument("--whiten", action="store_true", help="PCA: whitened latents")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--workers", type=_nonneg_int, default=0, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in OUT/checkpoints")
    p.add_argument("--checkpoint-every", type=_nonneg_int, default=d.checkpoint_every,
                   help="optimiser steps between checkpoints (and one per epoch)")
    p.add_argument("--max-images", type=_positive_int, default=None,
                   help="use only the first N images (sorted by path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def _refine(args: argparse.Namespace, log: logging.Logger):
    """``--refine-from``: the decoder refinement of a saved VAE-GAN alone."""
    source = args.refine_from
    model = load_latent_model(source, device=select_device(args.device))
    if not isinstance(model, VAEGANModel):
        raise UsageError(f"--refine-from {source}: a {model.space} model has no decoder to "
                         "refine (expected a VAE-GAN)")
    if model.arch.graph != "ours":
        raise UsageError(f"--refine-from {source}: the authors' imported graph is used as "
                         "published, not refined")
    crop = model.crop_factor if args.crop_factor is None else args.crop_factor
    data = FaceImages.from_folder(args.images, model.image_size, crop, args.max_images)
    epochs = REFINE_FROM_EPOCHS if args.refine_epochs is None else args.refine_epochs
    log.info("refining the decoder of %s on %d images of %s (%d epochs)", source, len(data),
             args.images, epochs)
    return refine_saved_model(source, data, args.out, epochs, args.refine_lr,
                              batch_size=args.batch_size, hflip=not args.no_flip,
                              seed=args.seed, workers=args.workers, device=model.device,
                              progress=not args.no_progress, model=model)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else
                        logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("bids_facedecode.latents")
    try:
        if args.refine_from is not None and args.space != "vaegan":
            raise UsageError("--refine-from refines a VAE-GAN's decoder: use --space vaegan")
        if args.space == "pca":
            size = args.image_size or 64
            data = FaceImages.from_folder(args.images, size, args.crop_factor or 1.0,
                                          args.max_images)
            log.info("PCA on %d images of %s at %dx%d", len(data), args.images, size, size)
            model = train_pca(data, args.out, n_components=args.latent_dim or 128,
                              whiten=args.whiten, device=args.device, seed=args.seed,
                              workers=args.workers)
        elif args.refine_from is not None:
            model = _refine(args, log)
        else:
            try:
                arch = get_arch(args.arch, args.latent_dim, args.image_size)
            except ValueError as exc:
                raise UsageError(f"--arch {args.arch}: {exc}") from exc
            data = FaceImages.from_folder(args.images, arch.image_size, args.crop_factor or 1.0,
                                          args.max_images)
            opts = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                kl_weight=args.kl_weight, feat_weight=args.feat_weight,
                                adv_weight=args.adv_weight, hflip=not args.no_flip,
                                workers=args.workers, seed=args.seed, device=args.device,
                                checkpoint_every=args.checkpoint_every,
                                progress=not args.no_progress,
                                refine_epochs=args.refine_epochs or 0,
                                refine_lr=args.refine_lr)
            log.info("VAE-GAN %s on %d images of %s", arch.name, len(data), args.images)
            model = train_vaegan(data, args.out, arch, opts, resume=args.resume)
    except FaceDecodeError as exc:
        print(f"bids_facedecode-train-latents: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bids_facedecode-train-latents: interrupted (resume with --resume)", file=sys.stderr)
        return EXIT_FAILURE
    print(f"saved {model.space} model (D={model.latent_dim}, {model.image_size}px) to {args.out}")
    return EXIT_SUCCESS


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
