"""Print the README results table (markdown) from a group-level output folder.

    python scripts/results_table.py demo/derivatives

Reads ``group/group_task-faces_statistics.tsv`` (written by the group level) and prints, per
metric, the across-participant mean (and the range over participants) for each latent space,
next to the figures VanRullen & Reddy (2019) report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

PAPER = {
    "pairwise_latent": "> 95 % (VAE-GAN); PCA lower",
    "pairwise_image": "PCA closer to VAE-GAN than in latent space",
    "gender_accuracy": "accurate (paper); ~70 % (independent reanalysis)",
    "imagery_pairwise": "above chance, far below perception",
    "pixel_correlation": "not reported as a headline",
    "ssim": "not reported as a headline",
}
ORDER = list(PAPER)


def results_table(output_dir: Path, task: str = "faces") -> str:
    """Markdown table of the group means per metric, decoder and region, one column per space."""
    tidy = pd.read_csv(Path(output_dir) / "group" / f"group_task-{task}_statistics.tsv", sep="\t")
    part = tidy[tidy.level == "participant"]
    grp = tidy[tidy.level == "group"]
    spaces = sorted(grp["space"].unique(), reverse=True)  # vaegan before pca
    lines = ["| metric | decoder | region | " + " | ".join(spaces) + " | paper |",
             "| --- | --- | --- | " + " | ".join("---" for _ in spaces) + " | --- |"]
    keys = grp[["metric", "base_metric", "decoder", "roi"]].drop_duplicates()
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
    print(results_table(Path(sys.argv[1]), *(sys.argv[2:3] or [])))
