"""What defines a simulated dataset: its settings and the random streams of its master seed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from .brain_code import PARAMS, BrainCode, parse_brain_code
from .events import RunLayout

DEFAULT_NOISE_PCT = 1.5

# stream tags of the master seed (np.random.SeedSequence([seed, tag, ...]))
TEST_FACES, NAMES, SUBJECT, TRAIN_FACES, SCHEDULE, RUN_EVENTS, RUN_NOISE = range(7)


def seed_stream(seed: int, *keys: int) -> np.random.Generator:
    """The generator of one random stream: the master seed and the stream's tag and keys."""
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
