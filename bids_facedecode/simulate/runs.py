"""The simulated runs: each run's events and stimuli, then its BOLD data (and fMRIPrep outputs)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import fmriprep as fp
from .bids_files import FIXATION, TASK, bids_stem, int16_scaling, jpeg_bytes, nifti, write_json
from .brain import (
    BrainSpace,
    SubjectTruth,
    baseline_intensity,
    brain_psc,
    signal_regressors,
    simulate_motion,
)
from .config import RUN_EVENTS, RUN_NOISE, SCHEDULE, SimulationConfig, seed_stream
from .events import IMG, NO_FACE, imagery_runs, run_trials, schedule_test_faces
from .faces import PARAM_NAMES, render_faces


@dataclass
class RunTask:
    """What a worker needs to generate and write one run."""

    seed: int
    sub: int
    ses: int
    run: int
    global_run: int
    root: Path
    n_vols: int
    onsets: np.ndarray
    durations: np.ndarray
    gains: np.ndarray
    param_gains: np.ndarray
    trial_params: np.ndarray
    brain: BrainSpace
    truth: SubjectTruth
    config: SimulationConfig


def brain_flat_index(brain: BrainSpace) -> np.ndarray:
    """Index of each brain voxel (mask order) into a C-ordered (Z, Y, X) volume."""
    ijk = np.argwhere(brain.mask)
    sx, sy, sz = brain.shape
    return np.ravel_multi_index((ijk[:, 2], ijk[:, 1], ijk[:, 0]), (sz, sy, sx))


def simulate_run(task: RunTask) -> dict:
    """Generate one run's BOLD data and write it (and its fMRIPrep outputs)."""
    t0 = time.perf_counter()
    cfg, brain, lay = task.config, task.brain, task.config.layout
    frame_times = np.arange(task.n_vols) * lay.tr
    X = signal_regressors(
        task.onsets, task.durations, task.gains, task.param_gains, task.trial_params,
        frame_times,
    )
    rng = seed_stream(task.seed, RUN_NOISE, task.sub, task.global_run)
    motion = simulate_motion(rng, task.n_vols, scale=0.0 if cfg.noiseless else 1.0)
    psc = brain_psc(task.truth, X, None if cfg.noiseless else rng, motion, cfg.ar_rho)
    s0 = baseline_intensity(brain)
    sx, sy, sz = brain.shape
    # background: low Rayleigh-like noise in whole intensity units (compresses well)
    vol = np.abs(rng.standard_normal((task.n_vols, sz * sy * sx), dtype=np.float32))
    vol *= 12.0
    vol += 20.0
    np.rint(vol, out=vol)
    vol[:, brain_flat_index(brain)] = s0 * (1.0 + psc / 100.0)
    del psc
    raw, slope = int16_scaling(vol)
    del vol
    raw4d = raw.reshape(task.n_vols, sz, sy, sx).transpose(3, 2, 1, 0)  # (X,Y,Z,T) F-order
    zooms = tuple(float(z) for z in np.abs(np.diag(brain.affine)[:3])) + (lay.tr,)
    img = nifti(raw4d, brain.affine, zooms)
    img.header.set_slope_inter(slope, 0.0)
    stem = bids_stem(task.sub, task.ses, task.run)
    func = task.root / f"sub-{task.sub:02d}" / f"ses-{task.ses:02d}" / "func"
    img.to_filename(func / f"{stem}_bold.nii.gz")
    if cfg.per_run_sidecars:
        write_json(func / f"{stem}_bold.json", run_sidecar(slope, cfg.layout.tr))
    if cfg.fmriprep:
        write_fmriprep_run(task, raw, slope, motion, zooms)
    return {"stem": stem, "seconds": time.perf_counter() - t0, "slope": slope}


def run_sidecar(slope: float, tr: float) -> dict:
    """A per-run ``_bold.json`` with Philips-like scaling fields."""
    return {
        "TaskName": TASK,
        "RepetitionTime": tr,
        "Manufacturer": "Philips",
        "MagneticFieldStrength": 3,
        "PhilipsRescaleSlope": slope,
        "PhilipsRescaleIntercept": 0,
        "PhilipsScaleSlope": round(1.0 / slope, 6),
        "UsePhilipsFloatNotDisplayScaling": 1,
    }


def write_fmriprep_run(
    task: RunTask, raw: np.ndarray, slope: float, motion: np.ndarray, zooms: tuple
) -> None:
    """The fMRIPrep-shaped outputs of one run: preprocessed BOLD, brain mask, confounds.

    ``raw`` is the run's int16 data of shape (T, Z*Y*X) and ``slope`` its scaling.
    """
    brain = task.brain
    sx, sy, sz = brain.shape
    data = raw.astype(np.float32) * np.float32(slope)  # (T, Z*Y*X)
    func = task.root / "derivatives" / "fmriprep" / f"sub-{task.sub:02d}" / f"ses-{task.ses:02d}"
    func = func / "func"
    func.mkdir(parents=True, exist_ok=True)
    base = f"{bids_stem(task.sub, task.ses, task.run)}_space-{fp.SPACE}"
    idx = brain_flat_index(brain)
    csf, wm = fp.tissue_masks(brain.template[brain.mask])
    rng = seed_stream(task.seed, RUN_NOISE, task.sub, task.global_run, 1)
    est = motion + rng.normal(0.0, 1.0, motion.shape) * np.array([0.002] * 3 + [4e-5] * 3)
    if task.config.noiseless:
        est = motion
    conf, meta = fp.confounds_table(data[:, idx], csf, wm, est, task.config.layout.tr)
    stem = bids_stem(task.sub, task.ses, task.run)
    conf.to_csv(
        func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a"
    )
    write_json(func / f"{stem}_desc-confounds_timeseries.json", meta)
    img = nifti(data.reshape(-1, sz, sy, sx).transpose(3, 2, 1, 0), brain.affine, zooms)
    img.set_data_dtype(np.float32)
    img.to_filename(func / f"{base}_desc-preproc_bold.nii.gz")
    write_json(
        func / f"{base}_desc-preproc_bold.json",
        {"TaskName": TASK, "RepetitionTime": task.config.layout.tr, "SkullStripped": False},
    )
    mask = nifti(brain.mask.astype(np.uint8), brain.affine, zooms[:3])
    mask.set_data_dtype(np.uint8)
    mask.to_filename(func / f"{base}_desc-brain_mask.nii.gz")


def subject_runs(
    cfg: SimulationConfig,
    sub: int,
    root: Path,
    brain: BrainSpace,
    truth: SubjectTruth,
    test_params: np.ndarray,
    test_names: list[str],
    test_jpegs: list[bytes],
    train_names: list[str],
    train_params: np.ndarray,
    stim_rows: list[dict],
    test_code: np.ndarray,
    train_code: np.ndarray,
) -> list[RunTask]:
    """Write one subject's events and stimuli; return the run tasks for the BOLD data.

    ``test_code`` (n_test, K) and ``train_code`` (n_train, K) are the faces' brain-code
    vectors (:func:`.brain_code.code_features`).
    """
    lay = cfg.layout
    n_runs = cfg.runs_per_subject
    n_test = len(test_names)
    rng = seed_stream(cfg.seed, SCHEDULE, sub)
    sched = schedule_test_faces(rng, n_runs, n_test, lay.n_test)
    img_flags = imagery_runs(n_runs, cfg.imagery_every)
    img_order = np.concatenate([rng.permutation(n_test) for _ in range(n_runs // n_test + 1)])
    std_test, std_train = test_code, train_code
    tasks = []
    n_img = 0
    for g in range(n_runs):
        ses, run = g // cfg.runs + 1, g % cfg.runs + 1
        train_idx = np.arange(g * lay.n_train, (g + 1) * lay.n_train)
        imagined = None
        if img_flags[g]:
            imagined = int(img_order[n_img])
            n_img += 1
        # face ids: test faces 0..n_test-1, training faces n_test + index
        trials = run_trials(
            seed_stream(cfg.seed, RUN_EVENTS, sub, g + 1), train_idx + n_test, sched[g], lay, imagined
        )
        folder = f"sub{sub:02d}/run{g + 1:02d}"
        (root / "stimuli" / folder).mkdir(parents=True, exist_ok=True)

        def name_of(fid: int, folder: str = folder) -> str:
            if fid == NO_FACE:
                return FIXATION
            nm = test_names[fid] if fid < n_test else train_names[fid - n_test]
            return f"{folder}/{nm}.jpg"

        events = pd.DataFrame(
            {
                "onset": trials["onset"],
                "duration": trials["duration"],
                "trial_type": trials["trial_type"],
                "stim_file": [name_of(f) for f in trials["face_id"]],
                "oneback": trials["oneback"],
                "imagined_stim_file": [
                    "n/a" if f == NO_FACE else name_of(f) for f in trials["imagined_id"]
                ],
            }
        )
        # stimuli of this run: rendered training faces and copies of the test faces
        imgs = render_faces(train_params[train_idx], cfg.image_size)
        for k, i in enumerate(train_idx):
            data = jpeg_bytes(imgs[k])
            rel = f"{folder}/{train_names[i]}.jpg"
            (root / "stimuli" / rel).write_bytes(data)
            stim_rows.append(stim_row(rel, data, sub, "train", train_params[i]))
        shown = sorted(set(sched[g].tolist()) | ({imagined} if imagined is not None else set()))
        for t in shown:
            rel = f"{folder}/{test_names[t]}.jpg"
            (root / "stimuli" / rel).write_bytes(test_jpegs[t])
            stim_rows.append(stim_row(rel, test_jpegs[t], sub, "test", test_params[t]))
        func = root / f"sub-{sub:02d}" / f"ses-{ses:02d}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        events.to_csv(
            func / f"{bids_stem(sub, ses, run)}_events.tsv",
            sep="\t",
            index=False,
            na_rep="n/a",
            float_format="%.1f",
        )
        # truth regressors: seen faces with gain 1, the imagined face with imagery_gain
        face = trials["face_id"].to_numpy() != NO_FACE
        fids = trials["face_id"].to_numpy()[face]
        params = np.where(
            (fids < n_test)[:, None],
            std_test[np.minimum(fids, n_test - 1)],
            std_train[np.maximum(fids - n_test, 0)],
        )
        onsets = trials["onset"].to_numpy()[face]
        durs = trials["duration"].to_numpy()[face]
        gains = np.ones(len(fids))
        pgains = 1.0 - trials["oneback"].to_numpy()[face].astype(float)
        if imagined is not None:
            row = trials[trials["trial_type"] == IMG].iloc[0]
            onsets = np.append(onsets, row["onset"])
            durs = np.append(durs, row["duration"])
            gains = np.append(gains, cfg.imagery_gain)
            pgains = np.append(pgains, cfg.imagery_gain)
            params = np.vstack([params, std_test[imagined]])
        tasks.append(
            RunTask(
                cfg.seed, sub, ses, run, g + 1, root, lay.n_volumes(imagined is not None),
                onsets, durs, gains, pgains, params, brain, truth, cfg,
            )
        )
    return tasks


def stim_row(rel: str, data: bytes, sub: int, role: str, params: np.ndarray) -> dict:
    """A row of the truth's ``stimuli.tsv``: file, SHA-1, subject, role and parameters.

    ``gender`` is itself a generative parameter (1.0 male, 0.0 female).
    """
    row = {"stim_file": rel, "sha1": hashlib.sha1(data).hexdigest(), "subject": f"sub-{sub:02d}",
           "role": role}
    row.update({name: float(params[j]) for j, name in enumerate(PARAM_NAMES)})
    return row
