"""The true-weights ceiling of identification on a simulated dataset.

The simulator (``bids_facedecode-simulate``) makes each face-selective voxel respond linearly to
the faces' generative parameters and keeps the weights in ``sourcedata/simulation/``. This script
decodes one participant in the space of those parameters (``--latents truth=<table>`` built from
``sourcedata/simulation/stimuli.tsv``) twice, from the same test-image betas and voxels: with
the map the GLM estimates (what the app does) and with the simulator's true weights (the
ceiling: no estimation error in the map), and prints the same metric records for both
(``workflow.evaluation.evaluate_decoded``). Simulated data only: real data have no truth.

    python benchmarks/bench_truth_ceiling.py demo/bids [--subject 01] [--n-voxels 2000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bids_facedecode import decode, glm
from bids_facedecode.bidsio.layout import index_dataset
from bids_facedecode.bidsio.masks import compute_brain_mask
from bids_facedecode.bidsio.simulation_truth import read_simulation_truth
from bids_facedecode.cli import build_parser, settings_from_args
from bids_facedecode.workflow.decoding import decode_space
from bids_facedecode.workflow.evaluation import EvalContext, evaluate_decoded
from bids_facedecode.workflow.inputs import collect_inputs
from bids_facedecode.workflow.spaces import compute_latents, open_spaces
from bids_facedecode.workflow.streaming import fit_joint_glm
from bids_facedecode.workflow.truth_ceiling import TruthCeiling

SIM = Path("sourcedata") / "simulation"
SHOWN = ("pairwise_latent", "nway_latent", "mean_rank_latent", "pairwise_latent_uncentred",
         "nway_latent_uncentred", "gender_balanced_accuracy")


def truth_table(bids: Path, out: Path) -> tuple[Path, list[str]]:
    """The generative parameters of every stimulus as a latent table (gender coded +1 / -1)."""
    stim = pd.read_csv(bids / SIM / "stimuli.tsv", sep="\t", na_values="n/a")
    stim = stim[stim.role != "placeholder"].drop_duplicates("sha1")
    stim["gender"] = stim["gender"] * 2 - 1  # as the simulated brain codes it
    params = [c for c in stim.columns if c not in ("stim_file", "sha1", "subject", "role")]
    table = stim[["sha1", *params]].rename(columns={p: f"z{k + 1}" for k, p in enumerate(params)})
    path = out / "truth.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path, params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bids_dir", type=Path)
    ap.add_argument("--subject", default="01")
    ap.add_argument("--n-voxels", type=int, default=2000)
    ap.add_argument("--n-permutations", type=int, default=1000)
    args = ap.parse_args(argv)
    bids = args.bids_dir.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        table, params = truth_table(bids, Path(tmp))
        cli = [str(bids), str(Path(tmp) / "out"), "participant", "--latent-space", "truth",
               "--latents", f"truth={table}", "--n-voxels", str(args.n_voxels), "--nprocs", "1",
               "--n-permutations", str(args.n_permutations)]
        settings = settings_from_args(build_parser().parse_args(cli), cli)
        cpu = torch.device("cpu")
        spaces = open_spaces(settings, cpu)
        inputs = collect_inputs(settings, index_dataset(settings.bids_dir), args.subject, {})
        latents = compute_latents(spaces, inputs)
        mask_img = compute_brain_mask(inputs.runs[0].bold)
        mask = np.asarray(mask_img.dataobj).astype(bool)
        ne = fit_joint_glm(inputs, latents, mask, settings, cpu, None)
        res = decode_space(spaces[0], ne, inputs, latents, settings)
        others = [n for n in ne.names if not n.startswith("z")]
        betas = glm.solve(glm.subset(ne, latents.z_columns("truth") + others)).numpy()
        rows = [len(params) + others.index(f"test_{t}") for t in inputs.test_ids]
        B_test = betas[rows][:, res.selected]
        # the truth: PSC weights (volume 0 the face amplitude, 1..P the parameters), in BOLD
        # units S0 / 100 of the participant's first run
        truth = TruthCeiling(read_simulation_truth(bids, args.subject, mask_img), inputs.test_ids,
                             inputs.train_ids, inputs.runs[0].bold, mask)
        W_true = (truth.truth.weights * truth.scale)[:, res.selected]
    D = len(params)
    decoded = {"estimated map": decode.decode_latents(B_test, res.W, res.z_mean, face_index=D),
               "true weights": decode.decode_latents(B_test, W_true, res.z_mean, face_index=D)}
    records = {}
    for name, z in decoded.items():
        ctx = EvalContext(spaces[0], res.test_true, None, res.per_image["gender"].to_numpy(object),
                          res.gender_axis, None, [], args.n_permutations, np.random.default_rng(0))
        records[name] = evaluate_decoded(ctx, z, np.zeros((0, D)), res.z_mean, {})[0]
    print(f"sub-{args.subject}: {len(inputs.runs)} runs, {len(inputs.train_trial_ids)} training trials, "
          f"{res.selected.size} voxels, D = {D} generative parameters")
    print(f"| metric | chance | {' | '.join(records)} |")
    print("| --- | --- | " + " | ".join("---" for _ in records) + " |")
    for key in SHOWN:
        first = next(iter(records.values())).get(key)
        if first is None:
            continue
        cells = [f"{r[key]['value']:.3f} (p {r[key]['p_value']:.2g})" for r in records.values()]
        print(f"| {key} | {first['chance']:.3g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
