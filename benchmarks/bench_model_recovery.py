"""Model recovery: can the app tell which latent space a simulated brain codes faces in?

For each brain code of the simulator (``--brain-code params|pca|vaegan``), several seeds and
noise levels, one demo-shaped participant is simulated and analysed in three spaces at once
(one GLM pass): the generative parameters (a precomputed table from the simulator's truth),
the shipped PCA and the shipped VAE-GAN. Per participant and space:

* encoding accuracy: mean R² and mean r over the ``--n-voxels`` most face-responsive voxels
  (face-vs-fixation t of the GLM without latents; space-neutral), forward maps ridge-
  regularised with the penalty chosen per voxel between the split halves (``--ols``: least
  squares), with the paired sign-flip test of every pair;
* identification: pairwise identification of the test images (decoded and true latents
  centred on the training mean; ``--n-voxels`` voxels by the space's own latent F).

It prints a table (true code x space): how often each space wins (highest value) on each
measure, and how often its paired encoding test against every other space is significant
(p < 0.05). ::

    python benchmarks/bench_model_recovery.py [--seeds 10] [--noise 1.5 3 6] [--quick] \
        [--first-seed 0] [--out rows.tsv]
    python benchmarks/bench_model_recovery.py --tables-from rows.tsv [more.tsv ...]

``--out`` appends every participant's rows as soon as it is analysed (a long sweep can be
split over several runs with ``--first-seed``); ``--tables-from`` prints the tables of saved rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bids_facedecode import decode, evaluate, glm
from bids_facedecode.bidsio.layout import index_dataset
from bids_facedecode.bidsio.masks import participant_mask
from bids_facedecode.config import Settings
from bids_facedecode.reliability import noise_ceiling
from bids_facedecode.simulate import SimulationConfig, simulate_dataset
from bids_facedecode.simulate.brain_code import write_params_table
from bids_facedecode.workflow import encoding_eval
from bids_facedecode.workflow.decoding import _half_test_betas, plan_analyses
from bids_facedecode.workflow.inputs import collect_inputs
from bids_facedecode.workflow.spaces import compute_latents, open_spaces
from bids_facedecode.workflow.streaming import fit_joint_glm

SPACES = ("params", "pca", "vaegan")


def analyse(bids: Path, work: Path, n_voxels: int, n_perm: int, seed: int,
            ols: bool = False) -> list[dict]:
    """Encoding and identification of every space for the dataset's one participant."""
    settings = Settings(bids_dir=bids, output_dir=(work / "out").resolve(),
                        analysis_level="participant", latent_spaces=SPACES,
                        latents={"params": write_params_table(bids, work / "params.tsv")},
                        n_voxels=n_voxels, nprocs=2)
    device = torch.device("cpu")
    inputs = collect_inputs(settings, index_dataset(bids), "01", filters={})
    latents = compute_latents(open_spaces(settings, device), inputs)
    mask_img = participant_mask(inputs.runs)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    analyses = plan_analyses(settings, inputs, mask_img, saved={})
    ne = fit_joint_glm(inputs, latents, mask, settings, device, cache_dir=None,
                       partitions=[analyses.halves])
    other = [n for n in ne.names if not n.startswith("z")]
    B, maps = encoding_eval.forward_maps(ne, latents, inputs.test_ids,
                                         first_half=None if ols else analyses.halves.parts[0])
    test_names = [f"test_{t}" for t in inputs.test_ids]
    nc = noise_ceiling(*_half_test_betas(analyses.halves, ne, other, test_names))
    voxels = encoding_eval.region_voxels([("all", None)], encoding_eval.face_t(ne), n_voxels,
                                          ne.n_voxels)
    rng = np.random.default_rng(seed)
    encs = [encoding_eval.space_encoding(s, B, W, W.shape[0] - 1, Zc, nc)
            for s, (W, Zc, _) in maps.items()]
    rows = []
    for enc in encs:
        lam = maps[enc.space][2]
        zcols = latents.z_columns(enc.space)
        fit = glm.whiten(ne, zcols + other, tested=zcols)
        sel = decode.select_voxels(fit.f_statistic().cpu().numpy(), n_voxels)
        betas = fit.betas(sel).cpu().numpy()
        rows_t = [fit.names.index(n) for n in test_names]
        Wsel = betas[list(range(len(zcols))) + [fit.names.index("face")]]
        zm = latents.means[enc.space]
        dec = decode.decode_latents(betas[rows_t], Wsel, zm, face_index=len(zcols))
        ident = evaluate.pairwise_identification(dec - zm, latents.test[enc.space] - zm).mean
        idx = voxels["all"]
        rows.append({"space": enc.space, "encoding_r": float(np.nanmean(enc.r[idx])),
                     "encoding_r2": float(np.nanmean(enc.r2[idx])), "identification": ident,
                     "n_reliable": int(idx.size),
                     "median_penalty": float(np.median(lam[idx]))})
    for pair in encoding_eval.paired_rows(encs, B, voxels, n_perm, rng):
        for a, b, sign in ((pair["space_a"], pair["space_b"], 1), (pair["space_b"],
                                                                  pair["space_a"], -1)):
            row = next(r for r in rows if r["space"] == a)
            row[f"beats_{b}"] = bool(sign * pair["difference"] > 0 and pair["p_value"] < 0.05)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codes", nargs="+", default=list(SPACES))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--noise", type=float, nargs="+", default=[1.5])
    ap.add_argument("--n-voxels", type=int, default=2000)
    ap.add_argument("--n-permutations", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="1 session of 4 runs at 8 mm")
    ap.add_argument("--ols", action="store_true",
                    help="least-squares forward maps instead of the cross-validated ridge")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--out", type=Path, help="append every participant's rows to this TSV")
    ap.add_argument("--tables-from", type=Path, nargs="+", help="print the tables of saved rows")
    args = ap.parse_args(argv)
    if args.tables_from:
        print_tables(pd.concat([pd.read_csv(p, sep="\t") for p in args.tables_from]))
        return 0
    shape = (dict(sessions=1, runs=4, resolution=8.0) if args.quick
             else dict(sessions=2, runs=8, resolution=4.0))
    records = []
    t0 = time.perf_counter()
    for noise in args.noise:
        for code in args.codes:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                with tempfile.TemporaryDirectory() as tmp:
                    tmp = Path(tmp)
                    cfg = SimulationConfig(subjects=1, seed=1000 + seed, noise=noise,
                                           brain_code=code, nprocs=1, **shape)
                    bids = simulate_dataset(tmp / "bids", cfg)
                    rows = [{"noise": noise, "code": code, "seed": seed, **row}
                            for row in analyse(bids, tmp, args.n_voxels, args.n_permutations,
                                               seed, args.ols)]
                records += rows
                if args.out:
                    pd.DataFrame(rows).to_csv(args.out, sep="\t", index=False, mode="a",
                                              header=not args.out.exists())
                print(f"  noise {noise} code {code} seed {seed} done "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print_tables(pd.DataFrame(records))
    print(f"\n{len(records) // len(SPACES)} participants in {time.perf_counter() - t0:.0f} s")
    return 0


def print_tables(df: pd.DataFrame) -> None:
    """Win fractions per (noise, true code) and space, and the paired test's recovery rate."""
    n = df.groupby(["noise", "code"])["seed"].nunique()
    print("participants per (noise, code):\n" + n.to_string())
    for measure in ("encoding_r2", "encoding_r", "identification"):
        best = df.loc[df.groupby(["noise", "code", "seed"])[measure].idxmax()]
        wins = (best.groupby(["noise", "code"])["space"].value_counts(normalize=True)
                .unstack(fill_value=0.0).reindex(columns=list(SPACES), fill_value=0.0))
        print(f"\nfraction of participants where each space has the highest {measure}")
        print(wins.round(2).to_string())
    sig = []
    for (noise, code), g in df.groupby(["noise", "code"]):
        true = g[g["space"] == code]
        cols = [f"beats_{s}" for s in SPACES if s != code and f"beats_{s}" in true]
        if len(true) and cols:
            sig.append({"noise": noise, "code": code,
                        "true space beats all others (paired encoding R², p < 0.05)":
                        float(true[cols].all(axis=1).mean())})
    if sig:
        print("\n" + pd.DataFrame(sig).round(2).to_string(index=False))


if __name__ == "__main__":
    raise SystemExit(main())
