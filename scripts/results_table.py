"""Print the README results table (markdown) from a group-level output folder.

    python scripts/results_table.py demo/derivatives [--compact]

Reads ``group/group_task-faces_statistics.tsv`` (written by the group level) and prints, per
metric, the across-participant mean (and the range over participants) for each latent space,
next to the figures VanRullen & Reddy (2019) report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PAPER = {  # VanRullen & Reddy (2019): group mean (range) over 4 subjects, uncentred correlations
    "pairwise_latent": "— (the paper's is uncentred)",
    "nway_latent": "—",
    "mean_rank_latent": "—",
    "pairwise_image": "—",
    "nway_image": "—",
    "gender_balanced_accuracy": "—",
    "gender_accuracy": "70 % (ceiling on true latents 85 %)",
    "imagery_pairwise": "at chance on the whole brain (p = 0.53)",
    "pixel_correlation": "—",
    "ssim": "50.5 % vs 45.8 % (VAE-GAN vs PCA)",
    "pairwise_latent_uncentred": "95.5 % (91.3–98.7) VAE-GAN vs 87.5 % (76.6–92.4) PCA",
    "nway_latent_uncentred": "20-way: 65 % VAE-GAN vs 41.25 % PCA",
    "pairwise_image_uncentred": "—",
    "imagery_pairwise_uncentred": "at chance on the whole brain (p = 0.53)",
}
PAPER_ROI = {  # pairwise (uncentred), VAE-GAN / PCA
    "occipital": "91.8 % / 87.2 %", "temporal": "78.8 % / 73.6 %", "frontoparietal": "60.1 % / 56.4 %",
}
ORDER = list(PAPER)


def _per_space(grp: pd.DataFrame, spaces: list[str], metric: str, column: str) -> str:
    """One number when every space shares it, else ``space value`` per space."""
    vals = {sp: grp[(grp.space == sp) & (grp.metric == metric)][column] for sp in spaces}
    vals = {sp: float(v.iloc[0]) for sp, v in vals.items() if len(v) and pd.notna(v.iloc[0])}
    if not vals:
        return ""
    if len({round(v, 3) for v in vals.values()}) == 1:
        return f"{next(iter(vals.values())):.3g}"
    return " / ".join(f"{sp} {v:.3f}" for sp, v in vals.items())


def results_table(output_dir: Path, task: str = "faces", compact: bool = False) -> str:
    """Markdown table of the group means per metric, decoder and region, one column per space.

    ``compact``: every metric of the paper's decoder over all voxels, and only pairwise latent
    identification (centred, and the paper's uncentred) for the other decoders and the regions.
    Beside the spaces: each metric's chance (the mean of the participants' exact null means),
    the mean-face baseline or the ceiling, and the paper's figure.
    """
    tidy = pd.read_csv(Path(output_dir) / "group" / f"group_task-{task}_statistics.tsv", sep="\t")
    part = tidy[tidy.level == "participant"]
    grp = tidy[tidy.level == "group"]
    spaces = sorted(grp["space"].unique(), reverse=True)  # vaegan before pca
    lines = ["| metric | decoder | region | " + " | ".join(spaces) + " | chance | baseline / ceiling | paper |",
             "| --- | --- | --- | " + " | ".join("---" for _ in spaces) + " | --- | --- | --- |"]
    keys = grp[["metric", "base_metric", "decoder", "roi"]].drop_duplicates()
    if compact:
        keys = keys[((keys.decoder == "ols") & (keys.roi == "all"))
                    | keys.base_metric.isin(["pairwise_latent", "pairwise_latent_uncentred"])]
    keys = keys.assign(order=keys["base_metric"].map(lambda m: ORDER.index(m) if m in ORDER else 99))
    keys = keys.sort_values(["order", "roi", "decoder"], key=lambda s: s.map(
        lambda v: (v != "all", v) if s.name == "roi" else ((v != "ols", v) if s.name == "decoder" else v)))
    for k in keys.itertuples():
        cells = []
        for sp in spaces:
            g = grp[(grp.space == sp) & (grp.metric == k.metric)]
            p = part[(part.space == sp) & (part.metric == k.metric)]["value"]
            if len(g) and len(p):
                pv = g["p_value"].iloc[0]
                star = "" if pd.isna(pv) else (" *" if pv < 0.05 else "")
                cells.append(f"{g['value'].iloc[0]:.3f} ({p.min():.2f}–{p.max():.2f}){star}")
            else:
                cells.append("n/a")
        paper = PAPER.get(k.base_metric, "") if k.decoder == "ols" and k.roi == "all" else ""
        if k.decoder == "ols" and k.base_metric == "pairwise_latent_uncentred" and k.roi in PAPER_ROI:
            paper = PAPER_ROI[k.roi]
        chance = _per_space(grp, spaces, k.metric, "chance")
        ref = ""
        for col in ("baseline", "ceiling"):
            v = _per_space(grp, spaces, k.metric, col) if col in grp else ""
            ref = f"{v} ({col})" if v else ref
        lines.append(f"| {k.base_metric} | {k.decoder} | {k.roi} | " + " | ".join(cells)
                     + f" | {chance} | {ref} | {paper} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--compact"]
    print(results_table(Path(args[0]), *(args[1:2] or []), compact="--compact" in sys.argv))
