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

PAPER = {  # VanRullen & Reddy (2019), and the independent reanalysis of the released data for gender
    "pairwise_latent": "> 95 % (VAE-GAN); PCA lower",
    "pairwise_image": "—",
    "gender_accuracy": "decodable; ~70 % in an independent reanalysis",
    "imagery_pairwise": "above chance",
    "pixel_correlation": "—",
    "ssim": "—",
}
ORDER = list(PAPER)


def results_table(output_dir: Path, task: str = "faces", compact: bool = False) -> str:
    """Markdown table of the group means per metric, decoder and region, one column per space.

    ``compact``: every metric of the paper's decoder over all voxels, and only pairwise latent
    identification for the other decoders and the regions.
    """
    tidy = pd.read_csv(Path(output_dir) / "group" / f"group_task-{task}_statistics.tsv", sep="\t")
    part = tidy[tidy.level == "participant"]
    grp = tidy[tidy.level == "group"]
    spaces = sorted(grp["space"].unique(), reverse=True)  # vaegan before pca
    lines = ["| metric | decoder | region | " + " | ".join(spaces) + " | paper |",
             "| --- | --- | --- | " + " | ".join("---" for _ in spaces) + " | --- |"]
    keys = grp[["metric", "base_metric", "decoder", "roi"]].drop_duplicates()
    if compact:
        keys = keys[((keys.decoder == "ols") & (keys.roi == "all")) | (keys.base_metric == "pairwise_latent")]
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
        lines.append(f"| {k.base_metric} | {k.decoder} | {k.roi} | " + " | ".join(cells) + f" | {paper} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--compact"]
    print(results_table(Path(args[0]), *(args[1:2] or []), compact="--compact" in sys.argv))
