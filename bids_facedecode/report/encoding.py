"""The reports' encoding sections: which latent space predicts the brain's responses best.

Built from the files on disk (:mod:`bids_facedecode.bidsio.encoding_outputs` names them): the
participant's region and paired tables, each space's R² and significance maps and the
best-space segmentation; at the group level the group table and the mean R² maps. Any number of
spaces is laid out side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from ..bidsio.encoding_outputs import encoding_paths, group_paths, table_paths
from . import SafeFigures

#: Columns of a space in the participant's region table, with their headers.
REGION_CELLS = (("mean_r", "mean r"), ("p_region", "p"), ("mean_r2", "mean R²"),
                ("mean_r2_ceiling", "R² / ceiling"), ("fraction_significant", "significant"))


def _read(path: Path, problems: list[str]) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                           dtype={"space": str, "space_a": str, "space_b": str, "region": str})
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: unreadable ({exc})")
        return None


def _records(t: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in t.to_dict("records")]


def region_view(regions: pd.DataFrame) -> dict:
    """The region table reshaped for N spaces side by side: one row per region."""
    spaces = list(dict.fromkeys(regions["space"]))
    rows = []
    for region, g in regions.groupby("region", sort=False):
        by = {r["space"]: r for r in _records(g)}
        rows.append({"region": region,
                     "n_voxels": next(iter(by.values()))["n_voxels"],
                     "cells": [by.get(s) for s in spaces]})
    return {"spaces": spaces, "rows": rows, "cells": REGION_CELLS}


def _slices(images: dict[str, nib.Nifti1Image], bg, best: nib.Nifti1Image | None,
            names: list[str], title: str):
    """One row of axial slices per map (the same slices for all) and the best-space map."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import plotting

    rows = len(images) + (best is not None)
    fig = plt.figure(figsize=(10, 1.9 * rows))
    stack = np.stack([np.nan_to_num(np.asarray(i.dataobj, np.float32)) for i in images.values()])
    vmax = float(np.nanmax(stack)) if stack.size and np.nanmax(stack) > 0 else 1.0
    peak = nib.Nifti1Image(stack.max(0), next(iter(images.values())).affine)
    cuts = plotting.find_cut_slices(peak, direction="z", n_cuts=6)
    common = {"display_mode": "z", "cut_coords": cuts, "black_bg": False, "draw_cross": False,
              "annotate": False, "bg_img": bg}
    for k, (name, img) in enumerate(images.items()):
        ax = fig.add_axes([0, 1 - (k + 1) / rows, 1, 1 / rows])
        data = np.nan_to_num(np.asarray(img.dataobj, np.float32))
        if not (data > 0).any():
            ax.axis("off")
            ax.text(0.5, 0.5, f"{name}: {title}: no voxel to show", ha="center")
            continue
        plotting.plot_stat_map(nib.Nifti1Image(np.clip(data, 0, None), img.affine), axes=ax,
                               title=f"{name}: {title}", threshold=1e-6, vmax=vmax,
                               colorbar=True, cmap="hot", **common)
    if best is not None:
        ax = fig.add_axes([0, 0, 1, 1 / rows])
        colours = plt.get_cmap("tab10").colors[: len(names)]
        labels = np.asarray(best.dataobj)
        if labels.any():
            plotting.plot_roi(best, axes=ax, cmap=ListedColormap(colours), vmin=0.5,
                              vmax=len(names) + 0.5, title="best space", alpha=0.9, colorbar=False,
                              **common)
        else:
            ax.axis("off")
            ax.text(0.5, 0.5, "best space: no voxel is significant in any space", ha="center")
        fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(colours, names, strict=True)],
                   loc="lower right", ncol=len(names), fontsize=8, frameon=False)
    return fig


def participant_section(rec, figs: SafeFigures) -> dict | None:
    """What the participant report's encoding section shows; None without encoding outputs.

    Parameters
    ----------
    rec : report.inputs.ParticipantRecord
    figs : SafeFigures
    """
    func = Path(rec.output_dir) / f"sub-{rec.subject}" / "func"
    space_ent = next((m.path.name.split("_space-")[1].split("_")[0] for m in rec.maps
                      if "_space-" in m.path.name), None)
    ents = {"sub": rec.subject, "task": rec.task, "space": space_ent}
    paths = table_paths(func, ents)
    regions = _read(paths["regions"], rec.problems)
    if regions is None or not len(regions):
        return None
    paired = _read(paths["paired"], rec.problems)
    try:
        sidecar = json.loads(paths["regions"].with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError):
        sidecar = {}
    view = region_view(regions)
    spaces = view["spaces"]
    figure = None
    try:
        r2 = {}
        for s in spaces:
            p = encoding_paths(func, ents, s, ceiling=False)
            sig = np.asarray(nib.load(p["significant"]).dataobj) > 0
            img = nib.load(p["r2"])
            r2[s] = nib.Nifti1Image(np.where(sig, np.asarray(img.dataobj), 0.0), img.affine)
        best = nib.load(paths["best"]) if paths["best"].is_file() else None
        bg = _background(rec)
        figure = figs.add("encoding maps", lambda: _slices(r2, bg, best, spaces,
                                                           "R² where r is significant"))
    except (OSError, ValueError) as exc:
        rec.problems.append(f"encoding maps: {exc}")
    return {"regions": view, "paired": _records(paired) if paired is not None else [],
            "figure": figure, "n_test": int(regions["n_test"].iloc[0]),
            "n_permutations": int(regions["n_permutations"].iloc[0]),
            "estimator": sidecar.get("ForwardMapDescription", "not recorded"),
            "files": {k: v.name for k, v in paths.items()}}


def _background(rec):
    from .maps import choose_background

    mask = nib.load(rec.brain_mask) if rec.brain_mask else None
    return choose_background(mask, [r.get("bold", "") for r in rec.config.get("runs", [])])[0]


def group_section(output_dir: Path, task: str, figs: SafeFigures, problems: list[str]
                  ) -> dict | None:
    """What the group report's encoding section shows; None without a group encoding table."""
    table_path = group_paths(output_dir, task, [])["table"]
    table = _read(table_path, problems)
    if table is None:
        return None
    try:
        spaces = list(json.loads(table_path.with_suffix(".json").read_text())["Spaces"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        spaces = list(dict.fromkeys([*table["space_a"], *table["space_b"]]))
    maps = group_paths(output_dir, task, spaces)
    found = {s: nib.load(maps[s]) for s in spaces if maps[s].is_file()}
    missing = [s for s in spaces if s not in found]
    figure = None
    if found:
        from .maps import choose_background

        first = next(iter(found.values()))
        bg = choose_background(nib.Nifti1Image((np.asarray(first.dataobj) != 0).astype(np.uint8),
                                               first.affine), [])[0]
        figure = figs.add("group encoding maps",
                          lambda: _slices(found, bg, None, list(found), "mean R²"))
    return {"table": {"columns": list(table.columns), "rows": _records(table)},
            "figure": figure, "missing": missing, "file": table_path.name}
