"""Participant level: BIDS runs -> joint GLM -> decoded, reconstructed and evaluated faces.

This module orchestrates; the reading lives in :mod:`bidsio`, the math in :mod:`design`,
:mod:`glm`, :mod:`decode` and :mod:`evaluate`, the writing in
:mod:`bidsio.participant_outputs`.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import decode, evaluate, glm
from .bidsio.bold import compute_brain_mask, load_masked_run_cached
from .bidsio.events import IMAGERY, ONEBACK, TEST, TRAIN, read_events
from .bidsio.layout import RunInfo, find_runs, index_dataset, read_filter_file, resolve_labels
from .bidsio.stimuli import StimulusIndex, gender_from_name
from .config import Settings
from .design import build_run_design
from .device import describe_device, select_device
from .errors import DataError, FaceDecodeError
from .images import load_images
from .latents.base import LatentModel

LOG = logging.getLogger(__name__)
FACE = "face"


# --------------------------------------------------------------------------- latent spaces
@dataclass
class LatentSpace:
    """A latent space as the participant level sees it: a model, a table, or both.

    Latents come from the table when one is given (precomputed), else from the model's
    encoder; reconstructions need a model whose latent size matches.
    """

    name: str
    model: LatentModel | None = None
    table: object | None = None  # latents.precomputed.LatentTable

    @property
    def dim(self) -> int:
        return int(self.table.latent_dim if self.table is not None else self.model.latent_dim)

    @property
    def can_reconstruct(self) -> bool:
        return self.model is not None and self.model.latent_dim == self.dim

    def latents_for(self, shas: list[str], index: StimulusIndex) -> np.ndarray:
        """Latents of the stimuli with these content hashes, shape (N, D)."""
        if self.table is not None:
            return np.asarray(self.table.lookup([index.first_path[s] for s in shas], shas), np.float32)
        images = load_images([index.path(s) for s in shas], self.model.image_size)
        return self.model.encode(images)


def open_spaces(settings: Settings, device: torch.device) -> list[LatentSpace]:
    """Load the model and/or table of every requested latent space."""
    from .latents.precomputed import load_latent_table
    from .latents.registry import load_latent_model, shipped_models

    shipped = shipped_models()
    spaces = []
    for name in settings.latent_spaces:
        table = load_latent_table(settings.latents[name]) if name in settings.latents else None
        model = None
        if name in settings.latent_models:
            model = load_latent_model(settings.latent_models[name], device=device)
        elif name in shipped:
            model = load_latent_model(name, device=device)
        if model is None and table is None:
            raise DataError(f"latent space '{name}': no model and no --latents table")
        space = LatentSpace(name, model, table)
        if table is not None and model is not None and not space.can_reconstruct:
            LOG.warning("%s: precomputed latents have D=%d but the model has D=%d; "
                        "no reconstructions in this space", name, table.latent_dim, model.latent_dim)
        spaces.append(space)
    return spaces


# --------------------------------------------------------------------------- inputs
@dataclass
class ParticipantInputs:
    """Everything read from BIDS for one participant, before any model fitting."""

    subject: str
    runs: list[RunInfo]
    trials: list[pd.DataFrame]          # per run: onset, duration, kind, stim_id, ...
    index: StimulusIndex
    train_ids: list[str]                # unique training stimuli (content hashes)
    train_trial_ids: list[str]          # one per training trial (repeats included)
    test_ids: list[str]                 # test identities, sorted by file name
    imagery_ids: list[str]              # imagined identities (subset of test_ids) or []
    nuisance_kinds: list[str]
    n_imagery_trials: int = 0

    @property
    def n_scans(self) -> int:
        return sum(r.n_scans for r in self.runs)


def collect_inputs(settings: Settings, layout, subject: str, filters: dict) -> ParticipantInputs:
    """Find the participant's runs, read and normalise events, identify stimuli by content."""
    runs = find_runs(layout, subject, settings.task, settings.session_label, filters)
    index = StimulusIndex(settings.stimuli_dir or settings.bids_dir / "stimuli")
    trials = []
    for run in runs:
        t = read_events(run.events, settings.events)
        face_rows = t["kind"].isin([TRAIN, TEST, ONEBACK]).to_numpy()
        stim_id = [index.identify(f, run.events) if is_face else ""
                   for f, is_face in zip(t["stim_file"], face_rows, strict=True)]
        img_rows = (t["kind"] == IMAGERY).to_numpy()
        for i in np.flatnonzero(img_rows):
            if t.at[i, "imagined_file"]:
                stim_id[i] = index.identify(t.at[i, "imagined_file"], run.events)
        t["stim_id"] = stim_id
        late = t["onset"] > run.n_scans * run.t_r
        if late.any():
            raise DataError(f"{run.events}: {int(late.sum())} trial(s) start after the run ends "
                            f"({run.n_scans} volumes x {run.t_r:g} s)")
        trials.append(t)
    all_trials = pd.concat(trials, ignore_index=True)
    train_trial_ids = all_trials.loc[all_trials["kind"] == TRAIN, "stim_id"].tolist()
    train_ids = list(dict.fromkeys(train_trial_ids))
    test_ids = sorted(set(all_trials.loc[all_trials["kind"] == TEST, "stim_id"]), key=index.name)
    if not train_ids:
        raise DataError(f"sub-{subject}: no '{settings.events.train_type}' trials in the events files")
    if len(test_ids) < 2:
        raise DataError(f"sub-{subject}: need at least 2 test images ('{settings.events.test_type}' "
                        f"trials), found {len(test_ids)}")
    img = all_trials[all_trials["kind"] == IMAGERY]
    labelled = img["stim_id"] != ""
    if len(img) and not labelled.all():
        LOG.warning("sub-%s: %d of %d imagery trials have no imagined-face label; imagery is "
                    "modelled as nuisance and not evaluated", subject, int((~labelled).sum()), len(img))
        for t in trials:
            t.loc[t["kind"] == IMAGERY, "kind"] = "imagery_unlabelled"
        imagery_ids: list[str] = []
    else:
        imagery_ids = sorted(set(img["stim_id"]), key=index.name)
        unknown = [index.name(i) for i in imagery_ids if i not in test_ids]
        if unknown:
            LOG.warning("sub-%s: imagined faces %s are not test faces; they are decoded but "
                        "not identified", subject, ", ".join(unknown))
    kinds = sorted({k for t in trials for k in t["kind"]} - {TRAIN, TEST, IMAGERY, "null"})
    return ParticipantInputs(subject, runs, trials, index, train_ids, train_trial_ids, test_ids,
                             imagery_ids, kinds, n_imagery_trials=len(img))


# --------------------------------------------------------------------------- GLM
@dataclass
class JointLatents:
    """Latents of all decoded spaces side by side, centred on each space's training mean."""

    names: list[str]
    offsets: list[int]
    dims: list[int]
    train: dict[str, np.ndarray]   # sha -> (sum of D,) centred
    means: dict[str, np.ndarray]   # space -> (D,)
    test: dict[str, np.ndarray]    # space -> (n_test, D) uncentred
    train_raw: dict[str, np.ndarray] = field(default_factory=dict)  # space -> (n_train, D)

    @property
    def total_dim(self) -> int:
        return int(sum(self.dims))

    def z_columns(self, space: str) -> list[str]:
        k = self.names.index(space)
        return [f"z{i}" for i in range(self.offsets[k] + 1, self.offsets[k] + self.dims[k] + 1)]


def compute_latents(spaces: list[LatentSpace], inputs: ParticipantInputs) -> JointLatents:
    """Encode (or look up) training and test stimuli in every space; centre on training means."""
    names, offsets, dims, blocks = [], [], [], []
    means, test, train_raw = {}, {}, {}
    trial_rows = [inputs.train_ids.index(s) for s in inputs.train_trial_ids]
    off = 0
    for space in spaces:
        t0 = time.perf_counter()
        z_train = space.latents_for(inputs.train_ids, inputs.index)
        z_test = space.latents_for(inputs.test_ids, inputs.index)
        mean = z_train[trial_rows].mean(axis=0)
        names.append(space.name)
        offsets.append(off)
        dims.append(z_train.shape[1])
        off += z_train.shape[1]
        blocks.append(z_train - mean)
        means[space.name], test[space.name], train_raw[space.name] = mean, z_test, z_train
        LOG.info("sub-%s %s: latents of %d training and %d test images (D=%d) in %.1f s",
                 inputs.subject, space.name, len(z_train), len(z_test), z_train.shape[1],
                 time.perf_counter() - t0)
    joint = np.concatenate(blocks, axis=1).astype(np.float64)
    n_trials = len(inputs.train_trial_ids)
    need = max(dims) + 1 + len(inputs.test_ids) + len(inputs.imagery_ids)
    if n_trials <= need:
        raise DataError(
            f"sub-{inputs.subject}: {n_trials} training trials cannot estimate a map with "
            f"{max(dims)} latent dimensions (needs more trials than the {need} regressors of "
            "latents, face, test and imagery; use a smaller latent space or more runs)"
        )
    return JointLatents(names, offsets, dims, dict(zip(inputs.train_ids, joint, strict=True)), means, test,
                        train_raw)


def fit_joint_glm(inputs: ParticipantInputs, latents: JointLatents, mask: np.ndarray,
                  settings: Settings, device: torch.device, cache_dir: Path | None):
    """Stream the runs through the design and the normal equations (one pass over the data).

    Runs are read (and cached) in parallel threads while the previous run is accumulated.
    """
    n_vox = int(mask.sum())
    ne = None
    chunk = None
    t0 = time.perf_counter()

    def load(run: RunInfo) -> np.ndarray:
        return load_masked_run_cached(run.bold, mask, cache_dir)

    with ThreadPoolExecutor(max_workers=max(1, settings.nprocs)) as pool:
        futures = [pool.submit(load, r) for r in inputs.runs[: max(1, settings.nprocs) + 1]]
        for k, (run, trials) in enumerate(zip(inputs.runs, inputs.trials, strict=True)):
            frame_times = np.arange(run.n_scans) * run.t_r
            design = build_run_design(
                trials, frame_times, latents.train, inputs.test_ids, inputs.imagery_ids,
                inputs.nuisance_kinds, latent_dim=latents.total_dim, run_label=run.label.replace(" ", "_"),
                high_pass=settings.high_pass,
            )
            if ne is None:
                ne = glm.new_normal_equations(design.shared_names, n_vox, device)
                longest = max(r.n_scans for r in inputs.runs)
                chunk = glm.plan_voxel_chunk(int(settings.mem_gb * 2**30), len(design.shared_names),
                                             n_vox, longest)
            Y = futures[k].result()
            futures[k] = None
            nxt = k + max(1, settings.nprocs) + 1
            if nxt < len(inputs.runs):
                futures.append(pool.submit(load, inputs.runs[nxt]))
            if Y.shape[0] != run.n_scans:
                raise DataError(f"{run.bold}: {Y.shape[0]} volumes, header says {run.n_scans}")
            glm.accumulate_run(ne, design.shared, Y, design.nuisance, voxel_chunk=chunk)
            del Y
            LOG.info("sub-%s: run %d/%d (%s) accumulated, %.1f s", inputs.subject, k + 1,
                     len(inputs.runs), run.label, time.perf_counter() - t0)
    return ne


# --------------------------------------------------------------------------- decoding
@dataclass
class SpaceResult:
    """Decoding results of one latent space for one participant."""

    space: str
    f_map: np.ndarray             # (V,)
    face_t: np.ndarray            # (V,)
    selected: np.ndarray          # (n_sel,) voxel indices into the mask
    W: np.ndarray                 # (D+1, n_sel): rows z1..zD, face
    z_mean: np.ndarray            # (D,)
    test_true: np.ndarray         # (N, D)
    test_decoded: np.ndarray      # (N, D)
    imagery_decoded: np.ndarray   # (M, D)
    gender_axis: np.ndarray | None
    gender_midpoint: np.ndarray | None
    shown: np.ndarray | None      # (N, S, S, 3)
    reconstructions: np.ndarray | None
    imagery_reconstructions: np.ndarray | None
    metrics: dict
    per_image: pd.DataFrame
    dof: int


def decode_space(space: LatentSpace, ne_all, inputs: ParticipantInputs, latents: JointLatents,
                 settings: Settings) -> SpaceResult:
    """Solve the space's GLM, select voxels, decode test and imagery faces, evaluate."""
    zcols = latents.z_columns(space.name)
    other = [n for n in ne_all.names if not n.startswith("z")]
    ne = glm.subset(ne_all, zcols + other)
    betas = glm.solve(ne)
    f_map = glm.f_statistic(ne, betas, zcols).cpu().numpy()
    face_t = glm.t_statistic(ne, betas, FACE).cpu().numpy()
    n_sel = min(settings.n_voxels, f_map.size)
    if settings.n_voxels > f_map.size:
        LOG.warning("--n-voxels %d exceeds the %d brain voxels; using all", settings.n_voxels, f_map.size)
    selected = decode.select_voxels(np.nan_to_num(f_map, nan=-np.inf), n_sel)
    B = betas[:, torch.as_tensor(selected, device=betas.device)].cpu().numpy()
    D = len(zcols)
    W = B[: D + 1]                                   # z1..zD, face
    names = ne.names
    test_rows = [names.index(f"test_{t}") for t in inputs.test_ids]
    img_rows = [names.index(f"img_{t}") for t in inputs.imagery_ids]
    z_mean = latents.means[space.name]
    test_dec = decode.decode_latents(B[test_rows], W, z_mean, face_index=D)
    img_dec = (decode.decode_latents(B[img_rows], W, z_mean, face_index=D) if img_rows
               else np.zeros((0, D), np.float32))
    test_true = latents.test[space.name]

    metrics, per_image = {}, pd.DataFrame({
        "stim_id": inputs.test_ids,
        "stim_file": [inputs.index.name(s) for s in inputs.test_ids],
        "gender": [gender_from_name(inputs.index.name(s)) or "n/a" for s in inputs.test_ids],
    })
    rng = np.random.default_rng(settings.seed)
    per_lat, mean_lat = evaluate.pairwise_identification(test_dec, test_true)
    mean_lat = float(mean_lat)
    metrics["pairwise_latent"] = {
        "value": mean_lat, "chance": 0.5, "n": len(test_true), "test": "permutation",
        "p_value": evaluate.identification_permutation_p(test_dec, test_true, 1000, rng),
    }
    per_image["pairwise_latent"] = per_lat
    per_image["latent_correlation"] = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(test_dec, test_true, strict=True)]

    shown = recon = img_recon = None
    if space.can_reconstruct:
        shown = load_images([inputs.index.path(s) for s in inputs.test_ids], space.model.image_size)
        recon = space.model.decode(test_dec)
        flat_r, flat_s = recon.reshape(len(recon), -1), shown.reshape(len(shown), -1)
        per_img, mean_img = evaluate.pairwise_identification(flat_r, flat_s)
        mean_img = float(mean_img)
        metrics["pairwise_image"] = {
            "value": mean_img, "chance": 0.5, "n": len(shown), "test": "permutation",
            "p_value": evaluate.identification_permutation_p(flat_r, flat_s, 1000, rng),
        }
        per_image["pairwise_image"] = per_img
        per_image["pixel_correlation"] = evaluate.pixel_correlation(recon, shown)
        per_image["ssim"] = evaluate.ssim(recon, shown)
        metrics["pixel_correlation"] = {"value": float(per_image["pixel_correlation"].mean()),
                                        "chance": None, "n": len(shown), "test": None, "p_value": None}
        metrics["ssim"] = {"value": float(per_image["ssim"].mean()), "chance": None,
                           "n": len(shown), "test": None, "p_value": None}
        if len(img_dec):
            img_recon = space.model.decode(img_dec)

    axis = midpoint = None
    train_gender = np.array([gender_from_name(inputs.index.name(s)) for s in inputs.train_ids])
    test_gender = per_image["gender"].to_numpy()
    if {"M", "F"} <= set(train_gender) and {"M", "F"} <= set(test_gender):
        labelled = np.isin(train_gender, ["M", "F"])
        axis, midpoint = evaluate.gender_axis(latents.train_raw[space.name][labelled],
                                              train_gender[labelled] == "M")
        ok = np.isin(test_gender, ["M", "F"])
        is_male = test_gender[ok] == "M"
        acc, n, p = evaluate.gender_accuracy(test_dec[ok], is_male, axis, midpoint)
        metrics["gender_accuracy"] = {"value": float(acc), "chance": 0.5, "n": int(n),
                                      "test": "binomial", "p_value": float(p)}
        correct = ((test_dec[ok] - midpoint) @ axis > 0) == is_male
        per_image["gender_correct"] = pd.array([None] * len(per_image), dtype="boolean")
        per_image.loc[ok, "gender_correct"] = correct
    else:
        LOG.warning("sub-%s %s: gender not evaluated (file names carry no M/F prefix for both "
                    "genders)", inputs.subject, space.name)

    if img_rows:
        in_test = [i for i, s in enumerate(inputs.imagery_ids) if s in inputs.test_ids]
        if in_test and len(inputs.test_ids) > 1:
            idx = np.array([inputs.test_ids.index(inputs.imagery_ids[i]) for i in in_test])
            per_imag, mean_imag = evaluate.imagery_identification(img_dec[in_test], idx, test_true)
            metrics["imagery_pairwise"] = {
                "value": float(mean_imag), "chance": 0.5, "n": len(in_test), "test": "permutation",
                "p_value": evaluate.imagery_permutation_p(img_dec[in_test], idx, test_true, 1000, rng),
            }
    return SpaceResult(space.name, f_map, face_t, selected, W, z_mean, test_true, test_dec, img_dec,
                       axis, midpoint, shown, recon, img_recon, metrics, per_image, ne.dof)


# --------------------------------------------------------------------------- driver
@dataclass
class ParticipantResult:
    subject: str
    inputs: ParticipantInputs
    mask_img: object
    spaces: dict[str, SpaceResult]
    device: str
    timings: dict[str, float]
    warnings: list[str] = field(default_factory=list)


def analyse_participant(settings: Settings, layout, subject: str, spaces: list[LatentSpace],
                        device: torch.device, filters: dict) -> ParticipantResult:
    """The whole participant analysis, without writing outputs."""
    timings = {}
    t0 = time.perf_counter()
    inputs = collect_inputs(settings, layout, subject, filters)
    LOG.info("sub-%s: %d runs, %d volumes, %d training trials (%d unique images), %d test images, "
             "%d imagery trials", subject, len(inputs.runs), inputs.n_scans, len(inputs.train_trial_ids),
             len(inputs.train_ids), len(inputs.test_ids), inputs.n_imagery_trials)
    latents = compute_latents(spaces, inputs)
    timings["inputs_and_latents"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    mask_img = compute_brain_mask(inputs.runs[0].bold)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    if not mask.any():
        raise DataError(f"{inputs.runs[0].bold}: the brain mask is empty")
    cache = settings.work_dir / "cache" / f"sub-{subject}" if settings.work_dir else None
    ne = fit_joint_glm(inputs, latents, mask, settings, device, cache)
    timings["glm"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    results = {s.name: decode_space(s, ne, inputs, latents, settings) for s in spaces}
    timings["decode"] = time.perf_counter() - t2
    return ParticipantResult(subject, inputs, mask_img, results, describe_device(device), timings)


def run_participants(settings: Settings) -> int:
    """Participant level for every selected participant; returns the exit code."""
    from .bidsio.derivatives import ensure_dataset_description
    from .bidsio.participant_outputs import write_participant_outputs

    layout = index_dataset(settings.bids_dir, settings.bids_database_dir)
    filters = read_filter_file(settings.bids_filter_file)
    subjects = resolve_labels(layout.get_subjects(), settings.participant_label, "sub", settings.bids_dir)
    device = select_device(settings.device)
    torch.set_num_threads(max(1, settings.nprocs))  # containers default OMP_NUM_THREADS to 1
    LOG.info("device: %s, %d CPU threads", describe_device(device), settings.nprocs)
    spaces = open_spaces(settings, device)
    failed: list[FaceDecodeError] = []
    for subject in subjects:
        t0 = time.perf_counter()
        try:
            result = analyse_participant(settings, layout, subject, spaces, device, filters)
            ensure_dataset_description(settings.output_dir, settings.bids_dir)
            write_participant_outputs(result, settings)
        except FaceDecodeError as exc:
            if len(subjects) == 1:
                raise
            print(f"bids_facedecode: error: sub-{subject}: {exc}")
            failed.append(exc)
            continue
        for name, res in result.spaces.items():
            for metric, label in (("pairwise_latent", "pairwise identification"),
                                  ("pairwise_image", "pairwise identification (image space)"),
                                  ("gender_accuracy", "gender accuracy"),
                                  ("imagery_pairwise", "imagery identification")):
                if metric in res.metrics:
                    m = res.metrics[metric]
                    print(f"sub-{subject} {name} {label}: {m['value']:.2f} (p={m['p_value']:.2g})")
        LOG.info("sub-%s done in %.1f s", subject, time.perf_counter() - t0)
    return failed[0].exit_code if failed else 0
