"""What the participant level's encoding analysis costs: the per-voxel ridge penalty of a space.

The encoding analysis reads no data (it works on the accumulated normal equations), so its cost
is arithmetic: for every penalty of the grid and each of the two split halves, a ridge solve of
the space's ``P = D + K`` regressors for every voxel and the held-out error (``~P²V`` each),
then the maps at the chosen penalties. This times those two steps on random normal equations
of the given sizes (the values do not change the arithmetic), on the CPU threads or the device
asked for::

    python benchmarks/bench_encoding_cost.py --dims 128 1024 --voxels 10000 20000 [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from bids_facedecode import encoding_ridge
from bids_facedecode.glm import NormalEquations


def normal_equations(D: int, K: int, V: int, seed: int, device: torch.device) -> NormalEquations:
    """Random accumulators of ``D`` latent and ``K`` other regressors over ``V`` voxels."""
    P = D + K
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(3 * P, P, generator=g, dtype=torch.float64)
    Y = torch.randn(3 * P, V, generator=g, dtype=torch.float64)
    names = [f"z{i}" for i in range(D)] + ["face"] + [f"test_{i}" for i in range(K - 1)]
    return NormalEquations((X.T @ X).to(device), (X.T @ Y).to(device),
                           (Y * Y).sum(0).to(device), 3 * P, 0, names, (X * X).sum(0).to(device))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[128])
    ap.add_argument("--voxels", type=int, nargs="+", default=[20000])
    ap.add_argument("--others", type=int, default=60, help="non-latent regressors (face, test...)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print("D      V  choose_penalty_s  ridge_maps_s  total_s  s_per_1000_voxels")
    for D in args.dims:
        for V in args.voxels:
            a, b = (normal_equations(D, args.others, V, s, device) for s in (0, 1))
            zc = a.names[:D]
            t0 = time.perf_counter()
            lam, _ = encoding_ridge.choose_penalty([(a, b), (b, a)], a.names, zc)
            t1 = time.perf_counter()
            encoding_ridge.ridge_maps(a, a.names, zc, zc + ["face"], lam)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            print(f"{D:<5d} {V:>6d}  {t1 - t0:16.1f}  {t2 - t1:12.1f}  {t2 - t0:7.1f}  "
                  f"{1000 * (t2 - t0) / V:17.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
