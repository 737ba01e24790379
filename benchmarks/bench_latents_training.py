"""VAE-GAN training throughput (images/s) for each architecture on this machine's device.

One optimiser step = encoder, decoder (reconstructions and prior samples),
discriminator, three backward passes and three Adam updates. Data are in memory, so the
figure is the compute ceiling; streaming from disk adds the DataLoader's cost. Usage::

    python benchmarks/bench_latents_training.py [--device auto] [--steps 20] [--archs small paper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bids_facedecode.latents.train import TrainOptions, VAEGANTrainer, select_device
from bids_facedecode.latents.vaegan_nets import count_parameters, get_arch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--archs", nargs="+", default=["small", "paper"])
    args = p.parse_args()
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}, torch {torch.__version__}, batch {args.batch_size}")
    print(f"{'arch':<7} {'size':>5} {'D':>5} {'params E+G':>11} {'params D':>9} {'img/s':>9} "
          f"{'ms/step':>8}")
    for arch_name in args.archs:
        arch = get_arch(arch_name)
        torch.manual_seed(0)
        trainer = VAEGANTrainer(arch, TrainOptions(), device)
        rng = np.random.default_rng(0)
        x = torch.from_numpy(rng.random((args.batch_size, 3, arch.image_size, arch.image_size),
                                        dtype=np.float32)).to(device)
        for _ in range(3):
            trainer.step(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.step(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / args.steps
        n_g = count_parameters(trainer.enc) + count_parameters(trainer.dec)
        print(f"{arch_name:<7} {arch.image_size:>5} {arch.latent_dim:>5} {n_g:>11,} "
              f"{count_parameters(trainer.disc):>9,} {args.batch_size / dt:>9.0f} {dt * 1e3:>8.1f}")


if __name__ == "__main__":
    main()
