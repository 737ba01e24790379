"""Write one participant's encoding derivatives: maps per space, region and paired tables.

Names (``func/``, ``[_space-<S>]`` the input's space as for the other maps; ``<sp>`` a latent
space; every NIfTI and TSV with a JSON sidecar):

* ``sub-<l>_task-<t>[_space-<S>]_desc-<sp>encoding_stat-{r,rsquared,p}_statmap.nii.gz``
* ``..._desc-<sp>encodingceiling_stat-{r,rsquared}_statmap.nii.gz`` (when the split halves give
  a noise ceiling)
* ``..._desc-<sp>encodingsig_mask.nii.gz`` (Benjamini–Hochberg over the analysed voxels)
* ``..._desc-bestspace_dseg.nii.gz`` + ``..._desc-bestspace_dseg.tsv`` (``index``, ``name``)
* ``sub-<l>_task-<t>_desc-encoding_regions.tsv`` (space × region) and
  ``sub-<l>_task-<t>_desc-encodingpaired_regions.tsv`` (pair of spaces × region)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .derivatives import bids_name, write_json, write_nifti, write_tsv

REGIONS_DESC, PAIRED_DESC, BEST_DESC = "encoding", "encodingpaired", "bestspace"

REGION_COLUMNS = {
    "space": "latent space whose forward map predicts the test images",
    "region": "'all': every analysed voxel; 'faceresponsive': the --n-voxels voxels of highest "
              "face-vs-fixation t (latent-free GLM, training trials); other names: the --roi-atlas "
              "region's --n-voxels voxels of highest face-vs-fixation t (all of a smaller region)",
    "n_voxels": "voxels scored in the region",
    "n_test": "test images the scores are computed across",
    "mean_r": "mean over the region's voxels of the per-voxel Pearson r between predicted and "
              "measured test-image betas",
    "p_region": "one-sided permutation p of mean_r: the test images' predictions reassigned at "
                "random, the same permutation for every voxel; (1 + #null >= observed) / "
                "(1 + n_permutations). Chance (the null's mean) is 0",
    "mean_r2": "mean per-voxel R² = 1 - SSE / SST across test images (descriptive; negative "
               "when the prediction is worse than the measured mean)",
    "mean_r_ceiling": "mean of r / sqrt(noise ceiling) over voxels whose ceiling is >= 0.1 "
                      "(n/a without a ceiling)",
    "mean_r2_ceiling": "mean of R² / noise ceiling over voxels whose ceiling is >= 0.1",
    "fraction_significant": "fraction of the region's voxels significant in the voxelwise "
                            "permutation test of r, Benjamini–Hochberg q <= 0.05 over all "
                            "analysed voxels",
    "n_permutations": "permutations of the test images",
}
PAIRED_COLUMNS = {
    "space_a": "first space", "space_b": "second space", "region": REGION_COLUMNS["region"],
    "n_voxels": "voxels compared", "n_test": "test images",
    "mean_r2_a": "mean per-voxel R² of space_a", "mean_r2_b": "mean per-voxel R² of space_b",
    "delta_r2": "mean_r2_a - mean_r2_b",
    "p_value": "two-sided paired sign-flip p: the two spaces' predictions of each test image "
               "swapped at random (all 2^N flips when 2^N <= n_permutations)",
    "test": "the test of p_value",
}


def _unmask(values: np.ndarray, mask_img, dtype) -> object:
    from nilearn.masking import unmask

    return unmask(np.asarray(values, dtype=dtype), mask_img)


def encoding_paths(func: Path, ents: dict, space: str, ceiling: bool = True) -> dict[str, Path]:
    """The NIfTI paths of one latent space's encoding maps, by kind."""
    def name(desc: str, stat: str | None, suffix: str = "statmap") -> Path:
        return Path(func) / bids_name({**ents, "desc": desc, "stat": stat}, suffix, ".nii.gz")

    out = {"r": name(f"{space}encoding", "r"), "r2": name(f"{space}encoding", "rsquared"),
           "p": name(f"{space}encoding", "p"),
           "significant": name(f"{space}encodingsig", None, "mask")}
    if ceiling:
        out["r_ceiling"] = name(f"{space}encodingceiling", "r")
        out["r2_ceiling"] = name(f"{space}encodingceiling", "rsquared")
    return out


def table_paths(func: Path, ents: dict) -> dict[str, Path]:
    """The region table, the paired table and the best-space segmentation (+ labels)."""
    base = {k: v for k, v in ents.items() if k != "space"}
    best = Path(func) / bids_name({**ents, "desc": BEST_DESC}, "dseg", ".nii.gz")
    return {"regions": Path(func) / bids_name({**base, "desc": REGIONS_DESC}, "regions", ".tsv"),
            "paired": Path(func) / bids_name({**base, "desc": PAIRED_DESC}, "regions", ".tsv"),
            "best": best, "best_labels": best.with_name(best.name.replace(".nii.gz", ".tsv"))}


_MAPS = {
    "r": ("Encoding accuracy r", "Pearson r", "permutation of the test images' predictions "
          "(chance 0)"),
    "r2": ("Encoding accuracy R² = 1 - SSE / SST", "fraction of across-image variance", "none "
           "(descriptive; compare spaces with the paired table)"),
    "r_ceiling": ("Encoding r relative to the noise ceiling, r / sqrt(NC); NaN where NC < 0.1",
                  "ratio", "none"),
    "r2_ceiling": ("Encoding R² relative to the noise ceiling, R² / NC; NaN where NC < 0.1",
                   "ratio", "none"),
    "p": ("One-sided permutation p of the voxel's encoding r", "probability",
          "the test images' predictions reassigned at random (the same permutation for every "
          "voxel); (1 + #null >= observed) / (1 + n_permutations)"),
    "significant": ("Voxels whose encoding r is significant, Benjamini–Hochberg q <= 0.05 over "
                    "the analysed voxels of the permutation p map", "binary",
                    "permutation of the test images, FDR-corrected"),
}


def write_encoding_outputs(enc, func: Path, ents: dict, mask_img, extra: dict | None = None
                           ) -> list[Path]:
    """Write every encoding output of one participant (see the module docstring).

    Parameters
    ----------
    enc : workflow.encoding_participant.ParticipantEncoding
    func : Path
        The participant's ``func/`` folder (in the stage).
    ents : dict
        Name entities (``sub``, ``task`` and the input's ``space``).
    mask_img : Nifti1Image
        The analysis mask the voxel arrays are over.
    extra : dict, optional
        Fields added to every sidecar (sources, the GLM's noise model).

    Returns
    -------
    list of Path
    """
    extra = dict(extra or {})
    written: list[Path] = []
    common = {"NTestImages": enc.n_test, "NPermutations": enc.n_permutations,
              "ForwardMapEstimator": enc.estimator,
              "ForwardMapDescription": enc.estimator_text(), **extra}
    if enc.grid:
        common["PenaltyGrid"] = list(enc.grid)
    for space in enc.spaces:
        lam = enc.penalty[space]
        for kind, path in encoding_paths(func, ents, space, enc.ceiling).items():
            text, units, null = _MAPS[kind]
            sidecar = {"Description": f"{text}: the {enc.n_test} test images' betas (latent-free "
                                      f"GLM) predicted from their {space} latents through the "
                                      "space's forward map, fitted on training trials only",
                       "Units": units, "Null": null, "LatentSpace": space, **common,
                       "PenaltyMedian": float(np.median(lam)) if lam.size else None}
            dtype = np.uint8 if kind == "significant" else np.float32
            written.append(write_nifti(path, _unmask(enc.maps[space][kind], mask_img, dtype),
                                       sidecar))
    paths = table_paths(func, ents)
    written.append(write_nifti(paths["best"], _unmask(enc.best, mask_img, np.int16), {
        "Description": "Which latent space predicts each voxel best: the space of highest "
                       "encoding r among the spaces whose r is significant there (Benjamini–"
                       "Hochberg q <= 0.05 of the voxel permutation test); 0 where none is",
        "Labels": paths["best_labels"].name, **common}))
    labels = pd.DataFrame({"index": range(len(enc.spaces) + 1),
                           "name": ["none", *enc.spaces]})
    written.append(write_tsv(paths["best_labels"], labels))
    for key, table, columns in (("regions", enc.regions, REGION_COLUMNS),
                                ("paired", enc.paired, PAIRED_COLUMNS)):
        sidecar = {c: {"Description": d} for c, d in columns.items()}
        written.append(write_json(paths[key].with_suffix(".json"), {**sidecar, **common}))
        written.append(write_tsv(paths[key], table.reindex(columns=list(columns))))
    return written


def find_paired_tables(output_dir: Path, task: str) -> dict[str, Path]:
    """Every participant's paired encoding table in ``output_dir``, by participant label."""
    found = {}
    for path in sorted(Path(output_dir).glob(f"sub-*/func/sub-*_task-{task}_desc-{PAIRED_DESC}"
                                             "_regions.tsv")):
        found[path.parent.parent.name[4:]] = path
    return found


def regions_table(paired: Path) -> Path:
    """The region table beside a participant's paired table."""
    paired = Path(paired)
    return paired.with_name(paired.name.replace(f"desc-{PAIRED_DESC}_", f"desc-{REGIONS_DESC}_"))


def find_r2_maps(output_dir: Path, task: str, space: str) -> dict[str, Path]:
    """Every participant's encoding R² map of ``space`` (any input ``space-`` entity)."""
    found = {}
    for path in sorted(Path(output_dir).glob(f"sub-*/func/sub-*_task-{task}*_desc-{space}encoding"
                                             "_stat-rsquared_statmap.nii.gz")):
        found[path.parent.parent.name[4:]] = path
    return found


def group_paths(output_dir: Path, task: str, spaces: list[str]) -> dict[str, Path]:
    """``group/group_task-<t>_encoding.tsv`` (key ``table``) and each space's mean R² map."""
    folder = Path(output_dir) / "group"
    out = {"table": folder / f"group_task-{task}_encoding.tsv"}
    for space in spaces:
        out[space] = folder / (f"group_task-{task}_desc-{space}encoding_stat-rsquared"
                               "_statmap.nii.gz")
    return out
