"""Rendering speed of the procedural face model (a benchmark, not a test).

    python benchmarks/bench_faces.py [--n 10000] [--size 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bids_facedecode.simulate.faces import render_faces, sample_face_params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    params = sample_face_params(args.n, np.random.default_rng(0))
    t0 = time.perf_counter()
    render_faces(params, size=args.size)
    dt = time.perf_counter() - t0
    print(f"{args.n} faces at {args.size}x{args.size}: {dt:.1f} s ({args.n / dt:.0f} faces/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
