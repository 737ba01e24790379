"""Trial sequences of the faces task (ds001761 layout), as integer face ids.

A run has ``n_slots`` slots of ``slot_s`` seconds starting at ``first_onset_s``: unique
training faces, test faces, one-back repeats (the previous face shown again) and null
(``Fix``) trials, shuffled; an imagery run adds one ``Img`` trial at the end. File names
are attached by :mod:`bids_facedecode.simulate.runs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN, TEST, FIX, IMG = "train_face", "test_face", "Fix", "Img"
NO_FACE = -1


@dataclass(frozen=True)
class RunLayout:
    """Timing and trial counts of one run (defaults: ds001761)."""

    n_train: int = 77
    n_test: int = 11
    n_oneback: int = 8
    n_fix: int = 30
    slot_s: float = 3.0
    first_onset_s: float = 6.0
    face_duration_s: float = 1.0
    img_duration_s: float = 12.0
    tr: float = 2.0
    n_vols: int = 195
    n_vols_imagery: int = 204

    @property
    def n_slots(self) -> int:
        return self.n_train + self.n_test + self.n_oneback + self.n_fix

    def n_volumes(self, imagery: bool) -> int:
        return self.n_vols_imagery if imagery else self.n_vols


def run_trials(
    rng: np.random.Generator,
    train_ids: np.ndarray,
    test_ids: np.ndarray,
    layout: RunLayout,
    imagined_id: int | None = None,
) -> pd.DataFrame:
    """Shuffle one run's trials.

    Parameters
    ----------
    rng : numpy.random.Generator
    train_ids : ndarray (layout.n_train,) int, unique training face ids
    test_ids : ndarray (layout.n_test,) int, test face ids shown in this run
    layout : RunLayout
    imagined_id : int, optional
        Test face id imagined in an ``Img`` trial at the end of the run.

    Returns
    -------
    trials : DataFrame with columns ``onset, duration, trial_type, face_id, oneback,
        imagined_id`` (face ids are -1 where no face is shown / imagined), one row per slot
        (plus the imagery trial), sorted by onset.
    """
    if len(train_ids) != layout.n_train or len(test_ids) != layout.n_test:
        raise ValueError(
            f"expected {layout.n_train} train and {layout.n_test} test ids, "
            f"got {len(train_ids)} and {len(test_ids)}"
        )
    kinds = np.array([TRAIN] * layout.n_train + [TEST] * layout.n_test + [FIX] * layout.n_fix)
    ids = np.concatenate(
        [np.asarray(train_ids), np.asarray(test_ids), np.full(layout.n_fix, NO_FACE)]
    ).astype(np.int64)
    order = rng.permutation(len(kinds))
    kinds, ids = kinds[order], ids[order]
    # one-back repeats: after distinct face trials, the same image again
    face_pos = np.flatnonzero(kinds != FIX)
    rep_after = np.sort(rng.choice(face_pos, size=layout.n_oneback, replace=False))
    seq_kind: list[str] = []
    seq_id: list[int] = []
    seq_rep: list[int] = []
    reps = set(rep_after.tolist())
    for i, (k, f) in enumerate(zip(kinds, ids, strict=True)):
        seq_kind.append(str(k))
        seq_id.append(int(f))
        seq_rep.append(0)
        if i in reps:
            seq_kind.append(str(k))
            seq_id.append(int(f))
            seq_rep.append(1)
    n = len(seq_kind)
    onset = layout.first_onset_s + layout.slot_s * np.arange(n)
    duration = np.where(np.array(seq_kind) == FIX, layout.slot_s, layout.face_duration_s)
    df = pd.DataFrame(
        {
            "onset": onset,
            "duration": duration.astype(float),
            "trial_type": seq_kind,
            "face_id": seq_id,
            "oneback": seq_rep,
            "imagined_id": NO_FACE,
        }
    )
    if imagined_id is not None:
        img = {
            "onset": layout.first_onset_s + layout.slot_s * n,
            "duration": layout.img_duration_s,
            "trial_type": IMG,
            "face_id": NO_FACE,
            "oneback": 0,
            "imagined_id": int(imagined_id),
        }
        df = pd.concat([df, pd.DataFrame([img])], ignore_index=True)
    return df


def schedule_test_faces(
    rng: np.random.Generator, n_runs: int, n_test_faces: int, per_run: int
) -> np.ndarray:
    """Which test faces each run shows, balanced across runs.

    Each run takes the faces shown least often so far (ties broken at random), so counts
    differ by at most one between faces, and no face repeats within a run unless
    ``per_run > n_test_faces``.

    Returns
    -------
    schedule : ndarray (n_runs, per_run) int, in random order within each run
    """
    counts = np.zeros(n_test_faces)
    sched = np.empty((n_runs, per_run), dtype=np.int64)
    for r in range(n_runs):
        picks: list[int] = []
        while len(picks) < per_run:
            k = min(n_test_faces, per_run - len(picks))
            order = np.lexsort((rng.random(n_test_faces), counts))
            chosen = order[:k]
            counts[chosen] += 1
            picks.extend(chosen.tolist())
        sched[r] = rng.permutation(picks)
    return sched


def imagery_runs(n_runs: int, every: int) -> np.ndarray:
    """Boolean (n_runs,): every ``every``-th run (1-based: runs every, 2*every, ...)."""
    if every <= 0:
        return np.zeros(n_runs, dtype=bool)
    return (np.arange(1, n_runs + 1) % every) == 0
