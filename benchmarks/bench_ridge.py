"""The ridge decoder's penalty: chosen vs the test set's oracle, per region, on simulated data.

Simulates a dataset (or reads one made by ``bids_facedecode-simulate``), runs the participant
level with ``--decoder ols ridge`` and the simulator's ROI atlas, and records, for every region,
what the penalty's choice saw (:func:`bids_facedecode.workflow.ridge_inputs.choose_region_ridge`)
and the region's test betas. It then decodes the test images at every penalty of the grid and
prints, per participant and region: the chosen ``λ``, the oracle ``λ`` (best pairwise
identification on the test set, which the choice never sees), identification (latent space,
vectors centred on the training mean) at the chosen ``λ``, at the oracle and at ``λ = 0`` (the
plain inverse, ``ols``), and the criterion (cross-validated identification of held-out
patterns of training images) at the chosen ``λ``.

Run twice to cover both regimes: ``--n-voxels 2000`` (regions decode from many voxels: the
plain inverse is usually the oracle) and ``--n-voxels 150`` (barely more voxels than the 129
rows of the map: shrinkage should help).

    python benchmarks/bench_ridge.py --n-voxels 2000
    python benchmarks/bench_ridge.py --n-voxels 150
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bids_facedecode import decode, evaluate, ridge
from bids_facedecode.cli import main
from bids_facedecode.simulate.dataset import SimulationConfig, simulate_dataset
from bids_facedecode.workflow import decoding

SIM = "sourcedata/simulation"


class Recorder:
    """Wraps the pipeline's ridge choice, its decoder and its evaluation to keep their inputs."""

    def __init__(self):
        self.regions: list[dict] = []
        self._pending: dict | None = None
        self._choose = decoding.choose_region_ridge
        self._decode = decode.decode_latents
        self._evaluate = decoding.evaluate_decoded

    def choose(self, folds, at, train_latents, z_mean):
        lam, scores, n_probes = self._choose(folds, at, train_latents, z_mean)
        self._pending = {"lam": lam, "scores": scores, "z_mean": np.asarray(z_mean)}
        return lam, scores, n_probes

    def decode(self, B, W, z_mean, face_index, ridge=0.0, device=None):
        p = self._pending
        if p is not None and ridge == p["lam"] and "B_test" not in p:
            # the first call after the choice decodes the region's test betas
            p["B_test"], p["W"] = np.asarray(B), np.asarray(W)
        return self._decode(B, W, z_mean, face_index, ridge=ridge, device=device)

    def evaluate(self, ctx, test_dec, img_dec, labels):
        p = self._pending
        if labels.get("decoder") == "ridge" and p is not None:
            p.update(roi=labels["roi"], test_true=np.asarray(ctx.test_true),
                     n_voxels=labels["n_voxels"])
            self.regions.append(p)
            self._pending = None
        return self._evaluate(ctx, test_dec, img_dec, labels)

    def install(self):
        decoding.choose_region_ridge = self.choose
        decode.decode_latents = self.decode
        decoding.evaluate_decoded = self.evaluate


def identification(B, W, z_mean, test_true, lam) -> np.ndarray:
    """Per test image: pairwise identification (latent space, centred on the training mean)."""
    D = W.shape[0] - 1
    z = decode.decode_latents(B, W, z_mean, D, ridge=lam)
    return evaluate.pairwise_identification(z - z_mean, test_true - z_mean).per_item


def main_bench(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bids", type=Path, help="a simulated dataset (default: simulate one)")
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--resolution", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-voxels", type=int, default=2000)
    ap.add_argument("--space", default="pca", help="latent space (its shipped model)")
    ap.add_argument("--nprocs", type=int, default=2)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_ridge_") as tmp:
        tmp = Path(tmp)
        bids = args.bids
        if bids is None:
            cfg = SimulationConfig(subjects=args.subjects, sessions=args.sessions, runs=args.runs,
                                   resolution=args.resolution, seed=args.seed, nprocs=args.nprocs)
            bids = simulate_dataset(tmp / "bids", cfg)
        rec = Recorder()
        rec.install()
        out = tmp / "derivatives"
        code = main([str(bids), str(out), "participant", "--latent-space", args.space,
                     "--decoder", "ols", "ridge", "--roi-atlas", str(bids / SIM / "atlas-simroi_dseg.nii.gz"),
                     "--n-voxels", str(args.n_voxels), "--n-permutations", "10",
                     "--nprocs", str(args.nprocs), "-w", str(tmp / "work"), "--skip-bids-validation"])
        if code != 0:
            return code

    grid = ridge.RIDGE_GRID
    print(f"\n{args.space}, --n-voxels {args.n_voxels}; identification = pairwise, latent space, "
          "centred on the training mean (chance 0.5)\n")
    print("| sub | region | voxels | chosen λ | oracle λ | id. chosen | id. oracle | id. ols "
          "| chosen − ols (± SE) | CV id. (chosen) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows, sub = [], 0
    for r in rec.regions:
        sub += r["roi"] == "all"  # each participant's regions start with the whole brain
        per = np.array([identification(r["B_test"], r["W"], r["z_mean"], r["test_true"], g)
                        for g in grid])          # (len(grid), N)
        ids = per.mean(axis=1)
        oracle, chosen = int(np.argmax(ids)), grid.index(r["lam"])
        diff = per[chosen] - per[0]
        se = diff.std(ddof=1) / np.sqrt(diff.size)  # per-image differences: a rough noise scale
        rows.append((ids[0], ids[chosen] - ids[0], ids[oracle] - ids[0], se))
        print(f"| {sub:02d} | {r['roi']} | {r['n_voxels']} | {r['lam']:g} | {grid[oracle]:g} | "
              f"{ids[chosen]:.3f} | {ids[oracle]:.3f} | {ids[0]:.3f} | "
              f"{ids[chosen] - ids[0]:+.3f} (± {se:.3f}) | {r['scores'][chosen]:.3f} |")
    a = np.array(rows)
    for label, keep in (("regions where ols decodes (id. ols > 0.6)", a[:, 0] > 0.6),
                        ("regions at chance (id. ols <= 0.6)", a[:, 0] <= 0.6)):
        if keep.any():
            d, o = a[keep, 1], a[keep, 2]
            print(f"\n{label}, {int(keep.sum())} fits: chosen − ols mean {d.mean():+.3f} "
                  f"(min {d.min():+.3f}), oracle − ols mean {o.mean():+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_bench())
