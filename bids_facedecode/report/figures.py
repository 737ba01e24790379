"""Figures for the reports (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def metric_strip_plot(table: pd.DataFrame, metric: str):
    """Per-participant values of one metric per space, with each participant's spaces joined
    by a line and the chance level dashed. Returns a matplotlib Figure."""
    g = table[table["metric"] == metric]
    spaces = sorted(g["space"].unique())
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * len(spaces), 3.0))
    wide = g.pivot_table(index="subject", columns="space", values="value", aggfunc="first")
    x = np.arange(len(spaces))
    for _, row in wide.iterrows():
        ax.plot(x, [row.get(s, np.nan) for s in spaces], "-o", color="0.6", lw=0.8, ms=4)
    means = [wide[s].mean() for s in spaces]
    ax.plot(x, means, "s", color="C3", ms=9, label="mean")
    chance = g["chance"].dropna()
    if len(chance):
        ax.axhline(float(chance.iloc[0]), ls="--", color="k", lw=0.8, label="chance")
    ax.set_xticks(x, spaces)
    ax.set_xlim(-0.5, len(spaces) - 0.5)
    ax.set_title(metric.replace("_", " "), fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def image_grid(rows: list[tuple[str, np.ndarray]], col_labels: list[str] | None = None,
               max_cols: int = 20):
    """A grid of images: one row per ``(label, images (N,H,W,3))``. Returns a Figure."""
    n = min(max(len(imgs) for _, imgs in rows), max_cols)
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n, 0.95 * len(rows) + 0.3), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(imgs):
                ax.imshow(np.clip(imgs[c], 0, 1), interpolation="nearest")
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0 and col_labels and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=6)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig
