"""Group level of the encoding analysis: every pair of spaces compared across participants.

Reads each participant's paired encoding table (``desc-encodingpaired_regions.tsv``: per pair of
spaces and region the difference of mean encoding R², ``ΔR² = R²_a − R²_b``) and tests, per pair
and region, the participants' ``ΔR²`` against 0 with the group level's conventions
(:func:`bids_facedecode.group_stats.against_chance`: one-sample t-test and Wilcoxon signed-rank, here
two-sided since either space may be the better one). It also counts the participants where each
space has the higher R², and averages the participants' R² maps of each space when they share a
voxel grid.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .bidsio.derivatives import write_json, write_nifti, write_tsv
from .bidsio.encoding_outputs import (
    find_paired_tables,
    find_r2_maps,
    group_paths,
    regions_table,
)
from .group_stats import against_chance

LOG = logging.getLogger(__name__)
COLUMNS = ["space_a", "space_b", "region", "n", "mean_r2_a", "mean_r2_b", "mean_delta_r2", "sd",
           "sem", "t", "p_t", "p_wilcoxon", "n_a_better", "n_b_better", "test"]


def read_paired(tables: dict[str, Path], order: list[str]) -> pd.DataFrame:
    """The participants' paired rows, each pair in the order of ``order`` (``ΔR²`` signed to
    match), so that participants who listed the spaces in another order agree.

    Returns
    -------
    DataFrame with columns ``subject, space_a, space_b, region, mean_r2_a, mean_r2_b, delta_r2``
    """
    frames = []
    for sub, path in tables.items():
        t = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                        dtype={"space_a": str, "space_b": str, "region": str})
        rank = {s: i for i, s in enumerate(order)}
        swap = t["space_a"].map(rank) > t["space_b"].map(rank)
        a, b = t["space_a"].where(~swap, t["space_b"]), t["space_b"].where(~swap, t["space_a"])
        ra = t["mean_r2_a"].where(~swap, t["mean_r2_b"])
        rb = t["mean_r2_b"].where(~swap, t["mean_r2_a"])
        frames.append(pd.DataFrame({"subject": sub, "space_a": a, "space_b": b,
                                    "region": t["region"], "mean_r2_a": ra, "mean_r2_b": rb,
                                    "delta_r2": t["delta_r2"].where(~swap, -t["delta_r2"])}))
    cols = ["subject", "space_a", "space_b", "region", "mean_r2_a", "mean_r2_b", "delta_r2"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def paired_group_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per pair of spaces and region: the across-participant test of ``ΔR²`` against 0.

    Parameters
    ----------
    rows : DataFrame
        :func:`read_paired`'s rows (one per participant, pair and region).

    Returns
    -------
    DataFrame with the columns of :data:`COLUMNS`
    """

    out = []
    for (a, b, region), g in rows.groupby(["space_a", "space_b", "region"], sort=False):
        d = pd.to_numeric(g["delta_r2"], errors="coerce").to_numpy(float)
        res = against_chance(d, 0.0, "two-sided")
        out.append({"space_a": a, "space_b": b, "region": region, "n": res["n"],
                    "mean_r2_a": float(np.nanmean(g["mean_r2_a"].astype(float))),
                    "mean_r2_b": float(np.nanmean(g["mean_r2_b"].astype(float))),
                    "mean_delta_r2": res["mean"], "sd": res["sd"], "sem": res["sem"],
                    "t": res["t"], "p_t": res["p_t"], "p_wilcoxon": res["p_wilcoxon"],
                    "n_a_better": int(np.sum(d > 0)), "n_b_better": int(np.sum(d < 0)),
                    "test": "one-sample t of ΔR² against 0 across participants (two-sided)"})
    return pd.DataFrame(out, columns=COLUMNS)


def mean_map(paths: dict[str, Path]) -> tuple[nib.Nifti1Image | None, str]:
    """The voxelwise mean over participants (NaN ignored) when every map shares one grid.

    Returns
    -------
    image : Nifti1Image or None
    why : str
        Empty when averaged, else the reason it was not.
    """
    imgs = [nib.load(p) for p in paths.values()]
    if not imgs:
        return None, "no participant maps"
    ref = imgs[0]
    if any(i.shape != ref.shape or not np.allclose(i.affine, ref.affine) for i in imgs[1:]):
        return None, "the participants' maps are on different voxel grids (not resampled)"
    data = np.stack([np.asarray(i.dataobj, np.float32) for i in imgs])
    with warnings.catch_warnings():  # voxels NaN in every participant: "mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(data, axis=0)
    return nib.Nifti1Image(np.nan_to_num(mean, nan=0.0).astype(np.float32), ref.affine), ""


def run_encoding_group(output_dir: Path, task: str) -> list[Path]:
    """Write the group encoding table and the mean R² maps; nothing when no participant has
    encoding outputs. Returns the paths written."""
    tables = find_paired_tables(output_dir, task)
    if not tables:
        return []
    spaces: dict[str, None] = {}  # every space of any participant, in the participants' order
    for path in tables.values():  # (one space alone has no pairs, but has maps)
        regions = pd.read_csv(regions_table(path), sep="\t", usecols=["space"], dtype=str)
        spaces.update(dict.fromkeys(regions["space"]))
    spaces = list(spaces)
    rows = read_paired(tables, spaces)
    paths = group_paths(output_dir, task, spaces)
    written = [write_tsv(paths["table"], paired_group_table(rows))]
    for space in spaces:
        maps = find_r2_maps(output_dir, task, space)
        img, why = mean_map(maps)
        if img is None:
            LOG.warning("group encoding %s: no mean R² map (%s)", space, why)
            continue
        written.append(write_nifti(paths[space], img, {
            "Description": f"Mean over participants of the {space} encoding R² maps "
                           "(NaN voxels left out of each mean; 0 where no participant has one)",
            "Subjects": sorted(maps), "LatentSpace": space, "Units": "fraction of across-image "
            "variance"}))
    written.append(write_json(paths["table"].with_suffix(".json"), {
        "Description": "Paired encoding comparison of every pair of latent spaces across "
                       "participants: per region the participants' ΔR² = mean R²(a) − mean "
                       "R²(b), tested against 0", "Subjects": sorted(tables), "Spaces": spaces}))
    return written
