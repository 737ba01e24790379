"""Brain maps for the participant report, drawn with nilearn on a template when one fits.

The template of data in a TemplateFlow space (the ``space-`` entity of fMRIPrep outputs) is that
space's T1w image when the local TemplateFlow home holds it (looked up offline); otherwise, and for
raw data that overlap the MNI brain, nilearn's bundled MNI152.
"""

from __future__ import annotations

import functools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

#: Dice overlap with the MNI152 brain mask above which data without a ``space-`` entity are
#: taken to be in MNI space (aligned data overlap ~0.8-0.95; native scanner space far less).
MNI_DICE = 0.6


@functools.lru_cache(maxsize=1)
def mni_template():
    """nilearn's bundled MNI152 template (2 mm), read from the nilearn package, no download."""
    from nilearn import datasets

    return datasets.load_mni152_template(resolution=2)


def mni_overlap(mask_img) -> float:
    """Dice coefficient between a brain mask and nilearn's MNI152 brain mask, in world space.

    Parameters
    ----------
    mask_img : Nifti1Image of a 3D boolean mask

    Returns
    -------
    float in [0, 1]
    """
    from nilearn import datasets, image

    mni = datasets.load_mni152_brain_mask(resolution=2)
    ours = image.resample_to_img(mask_img, mni, interpolation="nearest", force_resample=True,
                                 copy_header=True)
    a = np.asarray(ours.dataobj) > 0
    b = np.asarray(mni.dataobj) > 0
    denom = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denom) if denom else 0.0


def choose_background(mask_img, run_files: list[str]) -> tuple[object | None, str]:
    """Pick the background of the maps: a template when the data are in a template's space,
    otherwise the participant's brain mask.

    The ``space-`` entity of the BOLD files decides when present: its TemplateFlow T1w image when
    the TemplateFlow home holds it, else nilearn's MNI152 for an MNI space. Raw files carry none,
    and then the brain mask's overlap with the MNI brain (Dice > :data:`MNI_DICE`) decides.

    Returns
    -------
    background : Nifti1Image or None
    description : str, one sentence for the report
    """
    spaces = {part[6:] for f in run_files for part in str(f).split("/")[-1].split("_")
              if part.startswith("space-")}
    if len(spaces) == 1:
        from ..bidsio.templateflow_lookup import template_image

        found = template_image(next(iter(spaces)))
        if found is not None:
            return nib.load(found), f"{found.name} (TemplateFlow); the data are in that space"
    if spaces and all(s.startswith("MNI") for s in spaces):
        return mni_template(), f"MNI152 template (nilearn); the data are in {', '.join(sorted(spaces))}"
    if spaces:
        return mask_img, f"brain mask (the data are in {', '.join(sorted(spaces))}, not MNI space)"
    if mask_img is None:
        return None, "none (no brain mask in the outputs)"
    dice = mni_overlap(mask_img)
    if dice > MNI_DICE:
        return mni_template(), (f"MNI152 template (nilearn): the brain mask overlaps the MNI brain "
                                f"(Dice {dice:.2f})")
    return mask_img, (f"brain mask: the data do not look like MNI space (Dice with the MNI brain "
                      f"{dice:.2f}), and no mean EPI is kept in the outputs")


def estimated(data: np.ndarray) -> bool:
    """False for a map that was not estimated: NaN inside the brain and 0 outside it."""
    return not (np.isnan(data).any() and not np.any(np.nan_to_num(data)))


def map_figure(img, bg_img, title: str, *, kind: str = "stat", threshold: float | None = None,
               cut_coords: int = 7, vmax: float | None = None):
    """One map as a row of axial slices.

    Parameters
    ----------
    img : Nifti1Image, 3D statistic (``kind="stat"``) or 0/1 mask (``kind="roi"``)
    bg_img : Nifti1Image or None
    threshold : float, optional
        Values with smaller absolute value are not drawn (stat maps).

    Returns
    -------
    matplotlib Figure
    """
    from nilearn import plotting

    fig = plt.figure(figsize=(10, 2.1))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if not estimated(data):  # e.g. a latent F map of data without training trials
        fig.text(0.5, 0.5, f"{title}: not estimated for these data", ha="center", va="center")
        return fig
    if not np.any(data):
        fig.text(0.5, 0.5, f"{title}: empty map", ha="center", va="center")
        return fig
    cuts = plotting.find_cut_slices(img if kind == "stat" else _as_float(img), direction="z",
                                    n_cuts=cut_coords)
    common = {"display_mode": "z", "cut_coords": cuts, "figure": fig, "title": title,
              "annotate": True, "black_bg": False, "draw_cross": False, "bg_img": bg_img}
    if threshold is None:  # do not paint the zeros outside the map over the background
        threshold = 0.01 * float(np.abs(data).max())
    if kind == "roi":
        plotting.plot_roi(img, cmap="autumn", alpha=0.9, **common)
    else:
        plotting.plot_stat_map(img, threshold=threshold, colorbar=True, vmax=vmax, **common)
    return fig


def _as_float(img):
    return nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
