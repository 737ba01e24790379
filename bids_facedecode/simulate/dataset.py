"""Write a simulated, ds001761-shaped BIDS dataset with its known truth.

:func:`simulate_dataset` builds the whole dataset in a temporary sibling folder and
renames it into place at the end, so a crash never leaves a half-written dataset.
Runs are generated one at a time (optionally in parallel processes), never all in memory:
:mod:`.runs` writes them, :mod:`.bids_files` the metadata files, :mod:`.truth` the truth.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import CantCreateError
from . import fmriprep as fp
from .bids_files import FIXATION, jpeg_bytes, write_json, write_static_files
from .brain import SubjectTruth, load_brain, make_subject_truth
from .brain_code import subject_code
from .config import (
    NAMES,
    SUBJECT,
    TEST_FACES,
    TRAIN_FACES,
    SimulationConfig,
    seed_stream,
)
from .faces import GENDER_INDEX, render_faces, sample_face_params
from .runs import simulate_run, subject_runs
from .truth import write_truth

__all__ = ["SimulationConfig", "simulate_dataset"]

log = logging.getLogger(__name__)


def _face_names(rng: np.random.Generator, genders: np.ndarray) -> list[str]:
    """Unique names ``F0559`` / ``M0123``: the gender prefix and a random number."""
    n = len(genders)
    digits = max(4, len(str(2 * n)))
    numbers = rng.choice(10**digits - 1, size=n, replace=False) + 1
    return [f"{'M' if g == 1.0 else 'F'}{k:0{digits}d}" for g, k in zip(genders, numbers, strict=True)]


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
    write_static_files(root, cfg)
    rng = seed_stream(cfg.seed, TEST_FACES)
    n_male = cfg.n_test // 2
    genders = rng.permutation(np.r_[np.ones(n_male), np.zeros(cfg.n_test - n_male)])
    test_params = sample_face_params(cfg.n_test, rng, gender=genders)
    test_imgs = render_faces(test_params, cfg.image_size)
    test_jpegs = [jpeg_bytes(im) for im in test_imgs]
    n_train = cfg.runs_per_subject * cfg.layout.n_train
    train_params = {
        s: sample_face_params(n_train, seed_stream(cfg.seed, TRAIN_FACES, s))
        for s in range(1, cfg.subjects + 1)
    }
    all_g = np.concatenate(
        [test_params[:, GENDER_INDEX]] + [p[:, GENDER_INDEX] for p in train_params.values()]
    )
    names = _face_names(seed_stream(cfg.seed, NAMES), all_g)
    test_names = names[: cfg.n_test]
    prng = seed_stream(cfg.seed, SUBJECT, 0)
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
                seed_stream(cfg.seed, SUBJECT, s),
                weight_pct=cfg.weight_pct,
                noise_pct=cfg.noise_pct,
                drift_pct=0.0 if cfg.noiseless else cfg.drift_pct,
                motion_pct=0.0 if cfg.noiseless else cfg.motion_pct,
            )
            truths[s] = truth
            off = cfg.n_test + (s - 1) * n_train
            tasks = subject_runs(
                cfg, s, root, brain, truth, test_params, test_names, test_jpegs,
                names[off : off + n_train], train_params[s], stim_rows, codes[s][1], codes[s][0],
            )
            results = pool.map(simulate_run, tasks) if pool else map(simulate_run, tasks)
            for res in results:
                log.info("wrote %s (%.1f s)", res["stem"], res["seconds"])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if cfg.fmriprep:
        write_json(
            root / "derivatives" / "fmriprep" / "dataset_description.json",
            fp.dataset_description(__version__),
        )
    write_truth(root, cfg, brain, truths, stim_rows, codes,
                 [hashlib.sha1(j).hexdigest() for j in test_jpegs])
