"""``sub-<label>.html``: summary, maps, reconstructions, metrics, methods and provenance."""

from __future__ import annotations

import datetime as _dt
import platform

import numpy as np

from .. import __version__
from . import figure_to_data_uri, render
from .figures import image_grid


def _map_figure(values: np.ndarray, mask_img, title: str, threshold: float | None = None):
    import matplotlib.pyplot as plt
    import nibabel as nib
    from nilearn import plotting

    mask = np.asarray(mask_img.dataobj).astype(bool)
    vol = np.zeros(mask.shape, np.float32)
    vol[mask] = values
    img = nib.Nifti1Image(vol, mask_img.affine)
    fig = plt.figure(figsize=(9, 2.4))
    plotting.plot_stat_map(img, bg_img=None, display_mode="z", cut_coords=6, threshold=threshold,
                           title=title, figure=fig, colorbar=True, annotate=False, black_bg=False)
    return fig


def build_participant_report(result, settings) -> str:
    """Render the participant report to an HTML string."""
    from ..bidsio.derivatives import bids_name  # noqa: F401 (names shown in the report)

    spaces = result.spaces
    first = next(iter(spaces.values()))
    maps = [("Face vs fixation (t)", figure_to_data_uri(
        _map_figure(first.face_t, result.mask_img, "face vs fixation (t)", threshold=3.0)))]
    for name, res in spaces.items():
        thr = float(np.sort(res.f_map)[-res.selected.size]) if res.selected.size else None
        maps.append((f"{name}: latent F map (selected voxels above {thr:.2f})", figure_to_data_uri(
            _map_figure(res.f_map, result.mask_img, f"{name} latent F", threshold=thr))))
    rows = []
    shown = next((r.shown for r in spaces.values() if r.shown is not None), None)
    if shown is not None:
        rows.append(("shown", shown))
        rows += [(n, r.reconstructions) for n, r in spaces.items() if r.reconstructions is not None]
    recon = figure_to_data_uri(image_grid(rows, [result.inputs.index.name(s)[:10]
                                                 for s in result.inputs.test_ids])) if rows else None
    imag_rows = [(n, r.imagery_reconstructions) for n, r in spaces.items()
                 if r.imagery_reconstructions is not None and len(r.imagery_reconstructions)]
    imagery = figure_to_data_uri(image_grid(imag_rows, [result.inputs.index.name(s)[:10]
                                                        for s in result.inputs.imagery_ids])) if imag_rows else None
    metrics = sorted({m for r in spaces.values() for m in r.metrics})
    from ..bidsio.participant_outputs import citation_text

    return render(
        "participant.html.j2",
        subject=result.subject, version=__version__, task=settings.task,
        date=_dt.datetime.now().isoformat(timespec="seconds"),
        runs=result.inputs.runs, n_scans=result.inputs.n_scans,
        n_train=len(result.inputs.train_trial_ids), n_train_unique=len(result.inputs.train_ids),
        n_test=len(result.inputs.test_ids), n_imagery=result.inputs.n_imagery_trials,
        n_brain=int(first.f_map.size), device=result.device, timings=result.timings,
        spaces=spaces, metrics=metrics, maps=maps, recon=recon, imagery=imagery,
        methods=citation_text(settings, result), settings=settings.to_dict(),
        python=platform.python_version(), warnings=result.warnings,
    )
