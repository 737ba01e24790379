"""Speed of the identification permutation tests (``evaluate.permutation_test``).

Times one call with the five latent-space statistics the participant level tests together
(pairwise and n-way, centred and uncentred, and the mean rank) on N = 20 test images, for
10³ to 10⁶ permutations (the paper drew 10⁶), against a plain loop over permutations that
computes the same five means one permutation at a time, and checks both give the same counts.

    python benchmarks/bench_permutations.py [--n 20] [--max 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bids_facedecode import evaluate


def loop_counts(S: np.ndarray, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """The same Monte-Carlo counts, one permutation at a time (the reference)."""
    n = S.shape[1]
    rows = np.arange(n)
    observed = S[:, rows, rows].mean(axis=1)
    count = np.zeros(S.shape[0], np.int64)
    for _ in range(n_perm):
        perm = rng.permutation(n)
        count += S[:, rows, perm].mean(axis=1) >= observed - 1e-12
    return count


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--max", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    true = rng.standard_normal((args.n, 128)) + 3.0
    decoded = true + 4.0 * rng.standard_normal(true.shape)
    ref = np.full(128, 3.0)
    R = evaluate.identification_ranks(decoded, true, ref)
    S = np.stack([R, evaluate.nway_scores(decoded, true, ref), evaluate.identification_ranks(decoded, true),
                  evaluate.nway_scores(decoded, true), -evaluate.ranks_from_pairwise(R)])
    print(f"N = {args.n} test images, {S.shape[0]} statistics per call")
    print(f"{'permutations':>12} {'vectorised s':>13} {'loop s':>9} {'ratio':>7}  p (pairwise, n-way)")
    n_perm = 1000
    while n_perm <= args.max:
        t0 = time.perf_counter()
        res = evaluate.permutation_test(S, np.arange(args.n), n_perm, rng=1)
        t_vec = time.perf_counter() - t0
        loop_n = min(n_perm, 20000)  # the loop is timed on up to 20,000 and scaled
        t0 = time.perf_counter()
        loop_counts(S, loop_n, np.random.default_rng(1))
        t_loop = (time.perf_counter() - t0) * n_perm / loop_n
        print(f"{n_perm:>12,} {t_vec:>13.3f} {t_loop:>9.2f} {t_loop / t_vec:>7.1f}  "
              f"{res.p[0]:.2g}, {res.p[1]:.2g}")
        n_perm *= 10
    # the same permutations give the same counts: draw them as the vectorised test does
    n_perm = 5000
    res = evaluate.permutation_test(S, np.arange(args.n), n_perm, rng=2)
    perms = np.random.default_rng(2).permuted(np.broadcast_to(np.arange(args.n), (n_perm, args.n)), axis=1)
    rows = np.arange(args.n)
    obs = S[:, rows, rows].mean(axis=1)
    count = np.array([(S[k, rows[None], perms].mean(axis=1) >= obs[k] - 1e-12).sum() for k in range(len(S))])
    assert np.allclose(res.p, (1 + count) / (1 + n_perm)), (res.p, count)
    print("check: the vectorised counts equal a direct count over the same permutations")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
