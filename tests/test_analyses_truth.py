"""Metrics against the simulator's truth: the true generative weights are the ceiling.

(The controls that decoders knowing nothing sit at chance with valid p-values, and that a
leaky decoder fails them, are in ``test_controls.py``.)"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from bids_facedecode import decode, evaluate, glm
from bids_facedecode.bidsio.bold import load_masked_run
from bids_facedecode.bidsio.layout import index_dataset
from bids_facedecode.bidsio.masks import compute_brain_mask
from bids_facedecode.cli import build_parser, settings_from_args
from bids_facedecode.workflow.decoding import decode_space
from bids_facedecode.workflow.inputs import collect_inputs
from bids_facedecode.workflow.spaces import compute_latents, open_spaces
from bids_facedecode.workflow.streaming import fit_joint_glm

SIM = "sourcedata/simulation"


@pytest.fixture(scope="module")
def truth_fit(app_dataset, tmp_path_factory):
    """sub-01 of the app dataset decoded in the space of the true generative parameters."""
    tmp = tmp_path_factory.mktemp("truth")
    stim = pd.read_csv(app_dataset / SIM / "stimuli.tsv", sep="\t", na_values="n/a")
    stim = stim[stim.role != "placeholder"].drop_duplicates("sha1")
    stim["gender"] = stim["gender"] * 2 - 1  # the simulated brain codes gender as +1 / -1
    params = [c for c in stim.columns if c not in ("stim_file", "sha1", "subject", "role")]
    table = stim[["sha1", *params]].rename(columns={p: f"z{k + 1}" for k, p in enumerate(params)})
    table.to_csv(tmp / "truth.tsv", sep="\t", index=False)
    argv = [str(app_dataset), str(tmp / "out"), "participant", "--latent-space", "truth",
            "--latents", f"truth={tmp / 'truth.tsv'}", "--n-voxels", "300", "--nprocs", "1"]
    settings = settings_from_args(build_parser().parse_args(argv), argv)
    cpu = torch.device("cpu")
    spaces = open_spaces(settings, cpu)
    inputs = collect_inputs(settings, index_dataset(settings.bids_dir), "01", {})
    latents = compute_latents(spaces, inputs)
    mask_img = compute_brain_mask(inputs.runs[0].bold)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    ne = fit_joint_glm(inputs, latents, mask, settings, cpu, None)
    res = decode_space(spaces[0], ne, inputs, latents, settings)
    betas = glm.solve(glm.subset(ne, latents.z_columns("truth") +
                                 [n for n in ne.names if not n.startswith("z")]))
    names = [n for n in ne.names if not n.startswith("z")]
    test_rows = [len(params) + names.index(f"test_{t}") for t in inputs.test_ids]
    B_test = betas.numpy()[test_rows][:, res.selected]
    # the truth: PSC weights (volume 0 face amplitude, 1..P parameters) in BOLD units S0 / 100
    vols = np.asarray(nib.load(app_dataset / SIM / "sub-01_desc-weights_voxelweights.nii.gz").dataobj)[mask]
    s0 = load_masked_run(inputs.runs[0].bold, mask).mean(axis=0)
    W_true = (np.vstack([vols[:, 1:].T, vols[:, :1].T]) * s0 / 100.0)[:, res.selected]
    return res, B_test, W_true


def test_true_weights_are_the_ceiling(truth_fit):
    res, B_test, W_true = truth_fit
    D = res.test_true.shape[1]
    from_truth = decode.decode_latents(B_test, W_true, np.zeros(D), face_index=D)
    # the estimated map reproduces decode_space's own decoding from the same betas
    np.testing.assert_allclose(decode.decode_latents(B_test, res.W, res.z_mean, D), res.test_decoded,
                               rtol=1e-4, atol=1e-4)

    def corr(z):
        return np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(z - res.z_mean, res.test_true - res.z_mean,
                                                                strict=True)])

    from_truth = from_truth + res.z_mean  # the truth's deviations, on the latents' mean
    for ref in (res.z_mean, None):  # centred on the training mean (primary), and the paper's
        est_id = evaluate.pairwise_identification(res.test_decoded, res.test_true, ref).mean
        true_id = evaluate.pairwise_identification(from_truth, res.test_true, ref).mean
        assert est_id > 0.8
        assert true_id >= est_id
    assert corr(from_truth) > corr(res.test_decoded)
