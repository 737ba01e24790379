"""How linearly does each shipped latent space follow the simulator's generative face parameters?

The simulated brain responds linearly to the generative parameters (24 numbers per face). A
latent space can only be decoded from such a brain as far as its latents are (close to) a
linear function of those parameters. This script prints, for the shipped PCA and VAE-GAN
models, the cross-validated R² of a linear map parameters -> latents (variance-weighted over
latent dimensions) and of latents -> parameters, on held-out simulator faces.

    python benchmarks/bench_latent_linearity.py [--n 4000] [--seed 99]
"""

from __future__ import annotations

import argparse

import numpy as np

from bids_facedecode.latents.registry import load_latent_model
from bids_facedecode.simulate.faces import PARAM_NAMES, face_corpus


def cv_r2(X: np.ndarray, Y: np.ndarray, folds: int = 5, ridge: float = 1e-3) -> tuple[float, np.ndarray]:
    """Cross-validated R² of a linear (ridge) map X -> Y: overall (variance-weighted) and per column."""
    n = len(X)
    idx = np.arange(n)
    pred = np.empty_like(Y, dtype=np.float64)
    for k in range(folds):
        test = idx % folds == k
        Xa = np.column_stack([X[~test], np.ones((~test).sum())])
        A = Xa.T @ Xa + ridge * np.eye(Xa.shape[1])
        B = np.linalg.solve(A, Xa.T @ Y[~test])
        pred[test] = np.column_stack([X[test], np.ones(test.sum())]) @ B
    ss_res = ((Y - pred) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    return float(1 - ss_res.sum() / ss_tot.sum()), 1 - ss_res / ss_tot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=99)
    args = ap.parse_args(argv)
    images, params = face_corpus(args.n, seed=args.seed, size=64)
    print(f"{args.n} held-out simulator faces, {len(PARAM_NAMES)} generative parameters")
    print(f"{'space':8s} {'D':>4s} {'R2 params->latents':>19s} {'R2 latents->params':>19s}  worst-decoded parameters")
    for name in ("pca", "vaegan"):
        model = load_latent_model(name)
        Z = model.encode(images).astype(np.float64)
        fwd, _ = cv_r2(params.astype(np.float64), Z)
        back, per = cv_r2(Z, params.astype(np.float64))
        worst = ", ".join(f"{PARAM_NAMES[i]} {per[i]:.2f}" for i in np.argsort(per)[:3])
        print(f"{name:8s} {model.latent_dim:4d} {fwd:19.3f} {back:19.3f}  {worst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
