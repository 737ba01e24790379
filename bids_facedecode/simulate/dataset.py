"""Write a simulated, ds001761-shaped BIDS dataset with its known truth.

:func:`simulate_dataset` builds the whole dataset in a temporary sibling folder and
renames it into place at the end, so a crash never leaves a half-written dataset.
Runs are generated one at a time (optionally in parallel processes), never all in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image

from .. import __version__
from ..errors import CantCreateError, UsageError
from ..images import to_uint8
from . import fmriprep as fp
from .brain import (
    REGIONS,
    ROI_NAMES,
    BrainSpace,
    SubjectTruth,
    baseline_intensity,
    brain_psc,
    load_brain,
    make_subject_truth,
    roi_labels,
    signal_regressors,
    simulate_motion,
)
from .brain_code import (
    CODE_FEATURES,
    PARAMS,
    BrainCode,
    parse_brain_code,
    subject_code,
    write_code_features,
)
from .events import (
    FIX,
    IMG,
    NO_FACE,
    TEST,
    TRAIN,
    RunLayout,
    imagery_runs,
    run_trials,
    schedule_test_faces,
)
from .faces import GENDER_INDEX, PARAM_NAMES, render_faces, sample_face_params

log = logging.getLogger(__name__)

TASK = "faces"
BIDS_VERSION = "1.9.0"
FIXATION = "placeholders/fixation.png"
DEFAULT_NOISE_PCT = 1.5
TRUTH_DIR = Path("sourcedata") / "simulation"
INT16_MAX = 32000.0

# stream tags of the master seed (np.random.SeedSequence([seed, tag, ...]))
_TEST_FACES, _NAMES, _SUBJECT, _TRAIN_FACES, _SCHEDULE, _RUN_EVENTS, _RUN_NOISE = range(7)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated dataset (saved in ``simulation.json``).

    Attributes
    ----------
    subjects, sessions, runs : int
        Subjects, sessions per subject, faces runs per session.
    resolution : float
        Voxel size in mm of the MNI box the data cover.
    seed : int
        Master seed; every random stream derives from it.
    image_size : int
        Side of the stimulus images in pixels.
    n_test : int
        Test faces (half male, half female), shared by all subjects.
    noise : float or None
        Noise SD in percent signal change (None: ``DEFAULT_NOISE_PCT``).
    noiseless : bool
        No noise, drift or motion in the brain (the background stays noisy).
    imagery_every : int
        Every n-th run (counted across sessions) ends with an imagery trial; 0: none.
    per_run_sidecars : bool
        Write a ``_bold.json`` for each run besides the top-level one.
    fmriprep : bool
        Also write fMRIPrep-shaped derivatives.
    nprocs : int
        Processes generating runs in parallel.
    """

    subjects: int = 2
    sessions: int = 2
    runs: int = 8
    resolution: float = 4.0
    seed: int = 0
    image_size: int = 64
    n_test: int = 20
    noise: float | None = None
    noiseless: bool = False
    imagery_every: int = 2
    per_run_sidecars: bool = False
    fmriprep: bool = False
    nprocs: int = 1
    layout: RunLayout = field(default_factory=RunLayout)
    weight_pct: float = 0.3
    drift_pct: float = 0.6
    motion_pct: float = 2.0
    ar_rho: float = 0.4
    imagery_gain: float = 0.2
    brain_code: str = PARAMS
    brain_code_mix: tuple[str, ...] = ()

    @property
    def noise_pct(self) -> float:
        if self.noiseless:
            return 0.0
        return DEFAULT_NOISE_PCT if self.noise is None else float(self.noise)

    @property
    def runs_per_subject(self) -> int:
        return self.sessions * self.runs

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the first bad setting."""
        for name in ("subjects", "sessions", "runs", "nprocs"):
            if getattr(self, name) < 1:
                raise UsageError(f"'{name}' must be at least 1. Got {getattr(self, name)}.")
        if self.subjects > 99 or self.sessions > 99 or self.runs_per_subject > 99:
            raise UsageError("at most 99 subjects, sessions and runs per subject are supported")
        if not 1.0 <= self.resolution <= 12.0:
            raise UsageError(f"'resolution' must be within 1-12 mm. Got {self.resolution}.")
        if self.image_size < 16:
            raise UsageError(f"'image_size' must be at least 16. Got {self.image_size}.")
        if self.n_test < 2:
            raise UsageError(f"'n_test' must be at least 2. Got {self.n_test}.")
        if self.noise is not None and self.noise < 0:
            raise UsageError(f"'noise' must be non-negative. Got {self.noise}.")
        if self.imagery_every < 0:
            raise UsageError(f"'imagery_every' must be >= 0. Got {self.imagery_every}.")
        self.code()

    def code(self) -> BrainCode:
        """The brain code (:mod:`.brain_code`) of ``brain_code`` / ``brain_code_mix``."""
        return parse_brain_code(self.brain_code, self.brain_code_mix)


@dataclass
class _RunTask:
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


def bids_stem(sub: int, ses: int, run: int) -> str:
    """``sub-XX_ses-YY_task-faces_run-ZZ``."""
    return f"sub-{sub:02d}_ses-{ses:02d}_task-{TASK}_run-{run:02d}"


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _jpeg_bytes(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _nifti(data: np.ndarray, affine: np.ndarray, zooms: tuple[float, ...]) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def int16_scaling(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantise non-negative float data to int16 with a scanner-like slope (intercept 0).

    Returns
    -------
    raw : ndarray, int16, same shape
    slope : float, such that ``data ≈ raw * slope``
    """
    peak = float(np.max(data))
    slope = float(f"{max(peak, 1e-3) / INT16_MAX:.6g}")
    raw = np.rint(data / slope)
    np.clip(raw, -32768, 32767, out=raw)
    return raw.astype(np.int16), slope


def _brain_flat_index(brain: BrainSpace) -> np.ndarray:
    """Index of each brain voxel (mask order) into a C-ordered (Z, Y, X) volume."""
    ijk = np.argwhere(brain.mask)
    sx, sy, sz = brain.shape
    return np.ravel_multi_index((ijk[:, 2], ijk[:, 1], ijk[:, 0]), (sz, sy, sx))


def _simulate_run(task: _RunTask) -> dict:
    """Generate one run's BOLD data and write it (and its fMRIPrep outputs)."""
    t0 = time.perf_counter()
    cfg, brain, lay = task.config, task.brain, task.config.layout
    frame_times = np.arange(task.n_vols) * lay.tr
    X = signal_regressors(
        task.onsets, task.durations, task.gains, task.param_gains, task.trial_params,
        frame_times,
    )
    rng = _rng(task.seed, _RUN_NOISE, task.sub, task.global_run)
    motion = simulate_motion(rng, task.n_vols, scale=0.0 if cfg.noiseless else 1.0)
    psc = brain_psc(task.truth, X, None if cfg.noiseless else rng, motion, cfg.ar_rho)
    s0 = baseline_intensity(brain)
    sx, sy, sz = brain.shape
    # background: low Rayleigh-like noise in whole intensity units (compresses well)
    vol = np.abs(rng.standard_normal((task.n_vols, sz * sy * sx), dtype=np.float32))
    vol *= 12.0
    vol += 20.0
    np.rint(vol, out=vol)
    vol[:, _brain_flat_index(brain)] = s0 * (1.0 + psc / 100.0)
    del psc
    raw, slope = int16_scaling(vol)
    del vol
    raw4d = raw.reshape(task.n_vols, sz, sy, sx).transpose(3, 2, 1, 0)  # (X,Y,Z,T) F-order
    zooms = tuple(float(z) for z in np.abs(np.diag(brain.affine)[:3])) + (lay.tr,)
    img = _nifti(raw4d, brain.affine, zooms)
    img.header.set_slope_inter(slope, 0.0)
    stem = bids_stem(task.sub, task.ses, task.run)
    func = task.root / f"sub-{task.sub:02d}" / f"ses-{task.ses:02d}" / "func"
    img.to_filename(func / f"{stem}_bold.nii.gz")
    if cfg.per_run_sidecars:
        _write_json(func / f"{stem}_bold.json", _run_sidecar(slope, cfg.layout.tr))
    if cfg.fmriprep:
        _write_fmriprep_run(task, raw, slope, motion, zooms)
    return {"stem": stem, "seconds": time.perf_counter() - t0, "slope": slope}


def _run_sidecar(slope: float, tr: float) -> dict:
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


def _write_fmriprep_run(
    task: _RunTask, raw: np.ndarray, slope: float, motion: np.ndarray, zooms: tuple
) -> None:
    brain = task.brain
    sx, sy, sz = brain.shape
    data = raw.astype(np.float32) * np.float32(slope)  # (T, Z*Y*X)
    func = task.root / "derivatives" / "fmriprep" / f"sub-{task.sub:02d}" / f"ses-{task.ses:02d}"
    func = func / "func"
    func.mkdir(parents=True, exist_ok=True)
    base = f"{bids_stem(task.sub, task.ses, task.run)}_space-{fp.SPACE}"
    idx = _brain_flat_index(brain)
    csf, wm = fp.tissue_masks(brain.template[brain.mask])
    rng = _rng(task.seed, _RUN_NOISE, task.sub, task.global_run, 1)
    est = motion + rng.normal(0.0, 1.0, motion.shape) * np.array([0.002] * 3 + [4e-5] * 3)
    if task.config.noiseless:
        est = motion
    conf, meta = fp.confounds_table(data[:, idx], csf, wm, est, task.config.layout.tr)
    stem = bids_stem(task.sub, task.ses, task.run)
    conf.to_csv(
        func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a"
    )
    _write_json(func / f"{stem}_desc-confounds_timeseries.json", meta)
    img = _nifti(data.reshape(-1, sz, sy, sx).transpose(3, 2, 1, 0), brain.affine, zooms)
    img.set_data_dtype(np.float32)
    img.to_filename(func / f"{base}_desc-preproc_bold.nii.gz")
    _write_json(
        func / f"{base}_desc-preproc_bold.json",
        {"TaskName": TASK, "RepetitionTime": task.config.layout.tr, "SkullStripped": False},
    )
    mask = _nifti(brain.mask.astype(np.uint8), brain.affine, zooms[:3])
    mask.set_data_dtype(np.uint8)
    mask.to_filename(func / f"{base}_desc-brain_mask.nii.gz")


def _face_names(rng: np.random.Generator, genders: np.ndarray) -> list[str]:
    """Unique names ``F0559`` / ``M0123``: the gender prefix and a random number."""
    n = len(genders)
    digits = max(4, len(str(2 * n)))
    numbers = rng.choice(10**digits - 1, size=n, replace=False) + 1
    return [f"{'M' if g == 1.0 else 'F'}{k:0{digits}d}" for g, k in zip(genders, numbers, strict=True)]


def _static_files(root: Path, cfg: SimulationConfig) -> None:
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "bids_facedecode simulated faces dataset (ds001761-shaped)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["bids_facedecode-simulate"],
            "GeneratedBy": [
                {
                    "Name": "bids_facedecode-simulate",
                    "Version": __version__,
                    "Description": "Procedural faces and simulated BOLD with known truth",
                }
            ],
        },
    )
    _write_json(
        root / f"task-{TASK}_bold.json",
        {
            "TaskName": TASK,
            "RepetitionTime": cfg.layout.tr,
            "Manufacturer": "Philips",
            "MagneticFieldStrength": 3,
            "ManufacturersModelName": "Achieva",
            "MRAcquisitionType": "2D",
            "EchoTime": 0.03,
            "FlipAngle": 80,
            "Instructions": "Watch the faces; press a button when a face repeats (one-back). "
            "On imagery trials, imagine the test face named before the run",
            "TaskDescription": "Faces shown for 1 s every 3 s with a one-back task; "
            "imagery runs end with a 12 s imagery trial",
        },
    )
    _write_json(
        root / f"task-{TASK}_events.json",
        {
            "trial_type": {
                "LongName": "Trial type",
                "Levels": {
                    TRAIN: "a training face, each shown once",
                    TEST: "one of the test faces, shown many times",
                    FIX: "null trial (fixation cross)",
                    IMG: "imagery: the participant imagines a test face",
                },
            },
            "stim_file": {"Description": "image shown, relative to stimuli/"},
            "StimulusPresentation": {
                "SoftwareName": "bids_facedecode-simulate",
                "SoftwareVersion": __version__,
            },
            "oneback": {
                "Description": "1 when the image repeats the previous trial's (one-back target)",
                "Levels": {"0": "new image", "1": "one-back repeat"},
            },
            "imagined_stim_file": {
                "Description": "for Img trials, the test face imagined (relative to stimuli/)"
            },
        },
    )
    readme = (
        "Simulated faces dataset written by bids_facedecode-simulate "
        f"{__version__}.\n\nShaped like OpenNeuro ds001761 (VanRullen & Reddy, 2019): task-faces "
        "runs of procedurally generated faces, test faces repeated across runs, one-back "
        "repeats, null trials and imagery trials. BOLD data are simulated in MNI space from "
        "known voxel weights on the faces' generative parameters; the truth is stored in "
        "sourcedata/simulation/. No human data.\n"
    )
    (root / "README").write_text(readme)
    _write_json(
        root / "participants.json",
        {
            "age": {"Description": "age of the participant", "Units": "years"},
            "sex": {"Description": "sex of the participant", "Levels": {"M": "male", "F": "female"}},
        },
    )
    # fixation placeholder: grey with a cross
    fix = np.full((cfg.image_size, cfg.image_size, 3), 0.5, dtype=np.float32)
    c, w = cfg.image_size // 2, max(1, cfg.image_size // 32)
    fix[c - w : c + w, c - 4 * w : c + 4 * w] = 0.0
    fix[c - 4 * w : c + 4 * w, c - w : c + w] = 0.0
    (root / "stimuli" / "placeholders").mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(fix)).save(root / "stimuli" / FIXATION)


def _subject_runs(
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
) -> list[_RunTask]:
    """Write one subject's events and stimuli; return the run tasks for the BOLD data.

    ``test_code`` (n_test, K) and ``train_code`` (n_train, K) are the faces' brain-code
    vectors (:func:`.brain_code.code_features`).
    """
    lay = cfg.layout
    n_runs = cfg.runs_per_subject
    n_test = len(test_names)
    rng = _rng(cfg.seed, _SCHEDULE, sub)
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
            _rng(cfg.seed, _RUN_EVENTS, sub, g + 1), train_idx + n_test, sched[g], lay, imagined
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
            data = _jpeg_bytes(imgs[k])
            rel = f"{folder}/{train_names[i]}.jpg"
            (root / "stimuli" / rel).write_bytes(data)
            stim_rows.append(_stim_row(rel, data, sub, "train", train_params[i]))
        shown = sorted(set(sched[g].tolist()) | ({imagined} if imagined is not None else set()))
        for t in shown:
            rel = f"{folder}/{test_names[t]}.jpg"
            (root / "stimuli" / rel).write_bytes(test_jpegs[t])
            stim_rows.append(_stim_row(rel, test_jpegs[t], sub, "test", test_params[t]))
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
            _RunTask(
                cfg.seed, sub, ses, run, g + 1, root, lay.n_volumes(imagined is not None),
                onsets, durs, gains, pgains, params, brain, truth, cfg,
            )
        )
    return tasks


def _stim_row(rel: str, data: bytes, sub: int, role: str, params: np.ndarray) -> dict:
    # ``gender`` is itself a generative parameter (1.0 male, 0.0 female)
    row = {"stim_file": rel, "sha1": hashlib.sha1(data).hexdigest(), "subject": f"sub-{sub:02d}",
           "role": role}
    row.update({name: float(params[j]) for j, name in enumerate(PARAM_NAMES)})
    return row


def _write_truth(
    root: Path,
    cfg: SimulationConfig,
    brain: BrainSpace,
    truths: dict[int, SubjectTruth],
    stim_rows: list[dict],
    codes: dict[int, tuple[np.ndarray, np.ndarray]],
    test_sha1: list[str],
) -> None:
    out = root / TRUTH_DIR
    out.mkdir(parents=True, exist_ok=True)
    zooms = tuple(float(z) for z in np.abs(np.diag(brain.affine)[:3]))
    for sub, tr in truths.items():
        vols = np.zeros(brain.shape + (1 + tr.weights.shape[0],), dtype=np.float32)
        vols[brain.mask, 0] = tr.face_amp
        vols[brain.mask, 1:] = tr.weights.T
        img = _nifti(vols, brain.affine, zooms + (1.0,))
        img.header.set_xyzt_units("mm", "unknown")
        img.set_data_dtype(np.float32)
        img.to_filename(out / f"sub-{sub:02d}_desc-weights_voxelweights.nii.gz")
        sel = np.zeros(brain.shape, dtype=np.uint8)
        sel[brain.mask] = tr.selective
        m = _nifti(sel, brain.affine, zooms)
        m.set_data_dtype(np.uint8)
        m.to_filename(out / f"sub-{sub:02d}_desc-faceselective_mask.nii.gz")
    atlas = np.zeros(brain.shape, dtype=np.int16)
    atlas[brain.mask] = roi_labels(brain.brain_mm())
    a = _nifti(atlas, brain.affine, zooms)
    a.set_data_dtype(np.int16)
    a.to_filename(out / "atlas-simroi_dseg.nii.gz")
    pd.DataFrame({"index": list(range(1, len(ROI_NAMES) + 1)), "name": list(ROI_NAMES)}).to_csv(
        out / "atlas-simroi_dseg.tsv", sep="\t", index=False
    )
    pd.DataFrame(stim_rows).to_csv(out / "stimuli.tsv", sep="\t", index=False, na_rep="n/a")
    code = cfg.code()
    if not code.is_params:
        write_code_features(out / CODE_FEATURES, stim_rows, codes, test_sha1)
    cfg_dict = asdict(cfg)
    info = {
        "generator": {"name": "bids_facedecode-simulate", "version": __version__},
        "config": cfg_dict,
        "seed": cfg.seed,
        "param_names": list(PARAM_NAMES),
        "brain_code": code.label,
        "brain_code_components": [{"code": n, "weight": w} for n, w in code.components],
        "brain_coding": {
            "gender": "+1 male / -1 female (stimuli.tsv: 1 male / 0 female)",
            "other": "the values in stimuli.tsv (standardised, about N(0, 1))",
        } if code.is_params else {
            "features": "braincode_features.tsv: per stimulus (sha1, subject), the code vector "
            "c1..cK the voxels respond to (latents centred on the subject's training faces, "
            "scaled to the total variance of the params code; see brain_code.py)",
        },
        "model": (
            "psc_v(t) = a_v*face(t) + sum_k w_vk*p_k(t) + drift + motion + AR(1) noise; "
            "BOLD = S0_v*(1 + psc/100); imagery trials enter with gain imagery_gain"
        ),
        "noise": {
            "noise_pct": cfg.noise_pct,
            "ar_rho": cfg.ar_rho,
            "drift_pct": 0.0 if cfg.noiseless else cfg.drift_pct,
            "motion_pct": 0.0 if cfg.noiseless else cfg.motion_pct,
            "noiseless": cfg.noiseless,
        },
        "hrf": {
            "model": "spm",
            "oversampling": 50,
            "frame_times": "arange(n_volumes) * RepetitionTime",
            "face_duration_s": cfg.layout.face_duration_s,
            "imagery_duration_s": cfg.layout.img_duration_s,
        },
        "imagery_gain": cfg.imagery_gain,
        "weight_pct": cfg.weight_pct,
        "regions": [
            {
                "name": r.name,
                "roi": r.roi,
                "center_mm_right": list(r.center_mm),
                "radius_mm": r.radius_mm,
                "gain": r.gain,
                "face_amp": r.face_amp,
            }
            for r in REGIONS
        ],
        "subjects": {
            f"sub-{sub:02d}": {
                "centers_mm": {
                    r.name: tr.centers_mm[i].round(2).tolist() for i, r in enumerate(REGIONS)
                },
                "n_selective_voxels": int(tr.selective.sum()),
                "n_responsive_voxels": int((tr.face_amp != 0).sum()),
            }
            for sub, tr in truths.items()
        },
        "files": {
            "weights": "sub-<label>_desc-weights_voxelweights.nii.gz: volume 0 face amplitude "
            "(PSC), volumes 1..K weights (PSC per unit of each code feature: the P "
            "parameters, or the brain code's features)",
            "mask": "sub-<label>_desc-faceselective_mask.nii.gz",
            "atlas": "atlas-simroi_dseg.nii.gz / .tsv",
            "stimuli": "stimuli.tsv: stim_file (relative to stimuli/), sha1, subject, role "
            "(train/test/placeholder), then one column per generative parameter "
            "(gender: 1.0 male, 0.0 female)",
        },
    }
    _write_json(out / "simulation.json", info)


def simulate_dataset(out_dir: str | Path, config: SimulationConfig | None = None) -> Path:
    """Simulate a ds001761-shaped BIDS dataset with known truth.

    Parameters
    ----------
    out_dir : path-like
        Folder to create (it must not exist, or be empty).
    config : SimulationConfig, optional
        Defaults to ``SimulationConfig()`` (2 subjects x 2 sessions x 8 runs at 4 mm).

    Returns
    -------
    path : Path, the dataset root.
    """
    cfg = config or SimulationConfig()
    cfg.validate()
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CantCreateError(f"{out}: output folder exists and is not empty")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as exc:
        raise CantCreateError(f"{out}: cannot create output folder ({exc})") from exc
    t0 = time.perf_counter()
    try:
        _simulate_into(tmp, cfg)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("simulated dataset %s in %.1f s", out, time.perf_counter() - t0)
    return out


def _simulate_into(root: Path, cfg: SimulationConfig) -> None:
    brain = load_brain(cfg.resolution)
    _static_files(root, cfg)
    rng = _rng(cfg.seed, _TEST_FACES)
    n_male = cfg.n_test // 2
    genders = rng.permutation(np.r_[np.ones(n_male), np.zeros(cfg.n_test - n_male)])
    test_params = sample_face_params(cfg.n_test, rng, gender=genders)
    test_imgs = render_faces(test_params, cfg.image_size)
    test_jpegs = [_jpeg_bytes(im) for im in test_imgs]
    n_train = cfg.runs_per_subject * cfg.layout.n_train
    train_params = {
        s: sample_face_params(n_train, _rng(cfg.seed, _TRAIN_FACES, s))
        for s in range(1, cfg.subjects + 1)
    }
    all_g = np.concatenate(
        [test_params[:, GENDER_INDEX]] + [p[:, GENDER_INDEX] for p in train_params.values()]
    )
    names = _face_names(_rng(cfg.seed, _NAMES), all_g)
    test_names = names[: cfg.n_test]
    prng = _rng(cfg.seed, _SUBJECT, 0)
    participants = pd.DataFrame(
        {
            "participant_id": [f"sub-{s:02d}" for s in range(1, cfg.subjects + 1)],
            "age": prng.integers(20, 40, cfg.subjects),
            "sex": prng.choice(["M", "F"], cfg.subjects),
        }
    )
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    truths: dict[int, SubjectTruth] = {}
    stim_rows: list[dict] = []
    stim_rows.append(
        {"stim_file": FIXATION, "sha1": hashlib.sha1((root / "stimuli" / FIXATION).read_bytes())
         .hexdigest(), "subject": "n/a", "role": "placeholder"}
    )
    pool = None
    if cfg.nprocs > 1:
        pool = ProcessPoolExecutor(max_workers=cfg.nprocs, mp_context=get_context("spawn"))
    code = cfg.code()
    codes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        for s in range(1, cfg.subjects + 1):
            codes[s] = subject_code(code, train_params[s], test_params, test_imgs,
                                    cfg.image_size)
            truth = make_subject_truth(
                brain,
                codes[s][0].shape[1],
                _rng(cfg.seed, _SUBJECT, s),
                weight_pct=cfg.weight_pct,
                noise_pct=cfg.noise_pct,
                drift_pct=0.0 if cfg.noiseless else cfg.drift_pct,
                motion_pct=0.0 if cfg.noiseless else cfg.motion_pct,
            )
            truths[s] = truth
            off = cfg.n_test + (s - 1) * n_train
            tasks = _subject_runs(
                cfg, s, root, brain, truth, test_params, test_names, test_jpegs,
                names[off : off + n_train], train_params[s], stim_rows, codes[s][1], codes[s][0],
            )
            results = pool.map(_simulate_run, tasks) if pool else map(_simulate_run, tasks)
            for res in results:
                log.info("wrote %s (%.1f s)", res["stem"], res["seconds"])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if cfg.fmriprep:
        _write_json(
            root / "derivatives" / "fmriprep" / "dataset_description.json",
            fp.dataset_description(__version__),
        )
    _write_truth(root, cfg, brain, truths, stim_rows, codes,
                 [hashlib.sha1(j).hexdigest() for j in test_jpegs])

