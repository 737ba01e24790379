"""Simulation of a ds001761-shaped BIDS dataset with known truth.

* :mod:`.faces` — procedural cartoon faces with known generative parameters;
* :mod:`.brain` — the MNI-space brain, face-selective regions and voxel weights;
* :mod:`.events` — trial sequences of the faces task;
* :mod:`.dataset` — the BIDS writer (:func:`simulate_dataset`);
* :mod:`.cli` — the ``bids_facedecode-simulate`` command.
"""
