"""Reconstruction quality of held-out simulator faces: PCA vs VAE-GAN at the same D.

Prints, per model, the mean (and 5th percentile) per-image pixel correlation and SSIM of
``decode(encode(x))`` against ``x`` on faces the models never saw (a seed distinct from
the training corpus). Usage::

    python benchmarks/bench_latents_quality.py [--pca pca] [--vaegan vaegan] [--n 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from skimage.metrics import structural_similarity

from bids_facedecode.latents.registry import load_latent_model
from bids_facedecode.simulate.faces import face_corpus

HELDOUT_SEED = 987654321


def pixel_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation over pixels, per image. a, b: (N, S, S, 3) -> (N,)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM per image (RGB, data range 1). a, b: (N, S, S, 3) -> (N,)."""
    return np.array([structural_similarity(x, y, channel_axis=-1, data_range=1.0)
                     for x, y in zip(a, b, strict=True)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pca", default="pca")
    p.add_argument("--vaegan", default="vaegan")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"{'model':<8} {'D':>5} {'size':>5} {'pixel r':>8} {'r p5':>7} {'SSIM':>7} "
          f"{'SSIM p5':>8} {'enc+dec s':>9}")
    for name in ("pca", "vaegan"):
        model = load_latent_model(getattr(args, name), device=args.device)
        images, _ = face_corpus(args.n, seed=HELDOUT_SEED, size=model.image_size)
        t0 = time.perf_counter()
        rec = model.decode(model.encode(images))
        dt = time.perf_counter() - t0
        r, s = pixel_correlation(images, rec), ssim(images, rec)
        print(f"{name:<8} {model.latent_dim:>5} {model.image_size:>5} {r.mean():8.4f} "
              f"{np.percentile(r, 5):7.4f} {s.mean():7.4f} {np.percentile(s, 5):8.4f} {dt:9.2f}")


if __name__ == "__main__":
    main()
