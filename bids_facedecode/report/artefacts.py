"""Files the reports need beside the analysis outputs, written with them into the stage.

* ``figures/sub-<l>_task-<t>_desc-<space>_reconstructions.png``: shown faces and their
  reconstructions (``desc-allspaces``: the paper's Fig. 2, every space);
* ``figures/sub-<l>_task-<t>_desc-<space>_tiles.png`` (+ JSON): row 1 the test images as the
  model saw them, row 2 their reconstructions, one column per test image in the order of the
  decoding table; ``desc-<space>imagery_tiles.png``: row 1 the imagined face, row 2 the
  reconstruction decoded from the imagery trials;
* ``func/sub-<l>[_ses-<s>]_task-<t>[_run-<r>]_design.tsv`` (+ JSON): the first run's design,
  as fitted;
* ``logs/CITATION.md``: the methods boilerplate of the run's settings, the same whichever
  participant writes it (participant-specific facts are in each participant's report).

The result objects are read by attribute (``ParticipantResult`` of
:mod:`bids_facedecode.workflow.analysis`); nothing here imports the workflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bidsio.derivatives import write_bytes, write_json, write_text, write_tsv
from ..bidsio.outputs import ParticipantPaths, citation_path
from ..images import png_bytes
from . import figure_png
from .methods import citation_text


def write_report_artefacts(result, settings, root: Path) -> list[Path]:
    """Write the report's figures, tiles, design table and the citation text under ``root``."""
    p = ParticipantPaths(root, result.subject, settings.task)
    written: list[Path] = []
    recon = [(n, r) for n, r in result.spaces.items() if r.reconstructions is not None]
    for name, res in recon:
        written.append(_write_grid(p, name, [("shown", res.shown), (name, res.reconstructions)]))
    if len(recon) > 1:  # the paper's Fig. 2: shown, then each space's reconstruction
        written.append(_write_grid(p, "allspaces",
                                   [("shown", recon[0][1].shown)] + [(n, r.reconstructions) for n, r in recon]))
    written += _write_design(p, result.design)
    written += _write_face_tiles(p, result)
    cfg = {**settings.to_dict(), "version": _version()}
    dims = {n: int(r.W.shape[0] - 1) for n, r in result.spaces.items()}
    written.append(write_text(citation_path(root), citation_text(cfg, dims)))
    return written


def _version() -> str:
    from .. import __version__

    return __version__


def _write_grid(p: ParticipantPaths, desc: str, rows) -> Path:
    from .figures import image_grid

    return write_bytes(p.figure(desc, "reconstructions"), figure_png(image_grid(rows)))


def _write_design(p: ParticipantPaths, rec) -> list[Path]:
    if rec is None:
        return []
    path = p.design(rec.session, rec.run)
    sidecar = {
        "Description": "Design matrix of the participant's first run (all runs are fitted "
                       "jointly with the same columns; drift and intercept are per run)",
        "RepetitionTime": rec.t_r, "Run": rec.run_label, "Source": str(rec.bold.name),
        "HRFModel": "spm (nilearn)", "DriftModel": "cosine", "HighPass": rec.high_pass,
        "FrameTimes": "rows are volumes at t = k * RepetitionTime",
    }
    return [write_json(path.with_suffix(".json"), sidecar),
            write_tsv(path, rec.matrix.reset_index(drop=True))]


def _write_face_tiles(p: ParticipantPaths, result) -> list[Path]:
    inputs = result.inputs
    written: list[Path] = []
    names = {s: inputs.index.name(s) for s in {*inputs.test_ids, *inputs.imagery_ids}}
    for space, res in result.spaces.items():
        if res.reconstructions is None or res.shown is None:
            continue
        test_files = [names[s] for s in inputs.test_ids]
        written += _write_tiles(p, space, [res.shown, res.reconstructions], test_files,
                                ["shown", "reconstructed"])
        if res.imagery_reconstructions is not None and len(res.imagery_reconstructions):
            pos = {s: i for i, s in enumerate(inputs.test_ids)}
            blank = np.full(res.shown.shape[1:], 0.5, np.float32)
            imagined = np.stack([res.shown[pos[s]] if s in pos else blank for s in inputs.imagery_ids])
            written += _write_tiles(p, f"{space}imagery", [imagined, res.imagery_reconstructions],
                                    [names[s] for s in inputs.imagery_ids],
                                    ["imagined", "reconstructed"])
    return written


def _write_tiles(p: ParticipantPaths, desc: str, rows, files, row_names) -> list[Path]:
    sheet = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    path = p.figure(desc, "tiles")
    sidecar = {"Description": "Image tiles, one column per face, no resampling",
               "TileSize": int(rows[0].shape[1]), "Rows": row_names, "Columns": files}
    return [write_json(path.with_suffix(".json"), sidecar), write_bytes(path, png_bytes(sheet))]
