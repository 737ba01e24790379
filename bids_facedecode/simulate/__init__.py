"""Simulation of a ds001761-shaped BIDS dataset with known truth.

* :mod:`.faces` — procedural cartoon faces with known generative parameters;
* :mod:`.brain` — the MNI-space brain, face-selective regions and voxel weights;
* :mod:`.events` — trial sequences of the faces task;
* :mod:`.dataset` — the BIDS writer (:func:`simulate_dataset`), with :mod:`.config` (its
  settings), :mod:`.runs`, :mod:`.bids_files` and :mod:`.truth` (the files it writes);
* :mod:`.cli` — the ``bids_facedecode-simulate`` command.
"""

from __future__ import annotations

__all__ = ["SimulationConfig", "simulate_dataset", "write_face_corpus"]


def __getattr__(name: str):
    # lazy: importing the light ``faces`` module must not pull in nibabel/nilearn
    if name in ("SimulationConfig", "simulate_dataset"):
        from . import dataset

        return getattr(dataset, name)
    if name == "write_face_corpus":
        from .corpus import write_face_corpus

        return write_face_corpus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
