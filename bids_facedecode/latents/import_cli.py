"""``bids_facedecode-import-vaegan``: the authors' TensorFlow VAE-GAN checkpoint as a model directory.

Example::

    git clone https://github.com/rufinv/VAE-GAN-CelebA && git -C VAE-GAN-CelebA lfs pull
    bids_facedecode-import-vaegan VAE-GAN-CelebA/vaegan_celeba.ckpt --out models/authors
    bids_facedecode bids/ out/ participant --latent-model vaegan=models/authors
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import EXIT_SUCCESS, FaceDecodeError
from .tf_import import import_checkpoint


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the import command."""
    p = argparse.ArgumentParser(
        prog="bids_facedecode-import-vaegan",
        description="Import the authors' VAE-GAN (github rufinv/VAE-GAN-CelebA, "
                    "vaegan_celeba.ckpt) from its TensorFlow 1 checkpoint into a model "
                    "directory for --latent-model vaegan=DIR. The checkpoint is read without "
                    "TensorFlow (which is used, when installed, for tables the built-in reader "
                    "does not read).")
    p.add_argument("checkpoint", type=Path,
                   help="the checkpoint: a single-file (V1) checkpoint as published, or a V2 "
                        "prefix / its .index file")
    p.add_argument("--out", required=True, type=Path, help="model directory to create")
    p.add_argument("--list", action="store_true",
                   help="also print every variable used and left aside")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else
                        logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        model, report = import_checkpoint(args.checkpoint, args.out)
    except FaceDecodeError as exc:
        print(f"bids_facedecode-import-vaegan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    aside = ", ".join(f"{len(v)} {k}" for k, v in report.left_aside.items() if v) or "none"
    print(f"used {len(report.used)} variables (encoder and generator); left aside: {aside}")
    if args.list:
        for name in report.used:
            print(f"  used        {name}")
        for group, names in report.left_aside.items():
            for name in names:
                print(f"  left aside  {name}  ({group})")
    origin = ("the authors' published checkpoint" if report.official
              else "not the authors' published file (see the warning)")
    print(f"saved vaegan model (authors' graph, D={model.latent_dim}, {model.image_size}px, "
          f"{origin}) to {args.out}")
    return EXIT_SUCCESS


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
