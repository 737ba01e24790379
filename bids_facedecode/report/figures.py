"""Charts and image grids for the reports (matplotlib, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Metrics in the order the reports show them: the primary ones, then the paper's uncentred ones.
CHANCE_METRICS = (
    "pairwise_latent", "nway_latent", "mean_rank_latent", "pairwise_image", "nway_image",
    "gender_balanced_accuracy", "gender_accuracy", "imagery_pairwise", "pixel_correlation", "ssim",
    "pairwise_latent_uncentred", "nway_latent_uncentred", "pairwise_image_uncentred",
    "imagery_pairwise_uncentred",
)
#: Metrics that are not fractions (kept out of the 0-1 charts).
NOT_FRACTIONS = ("mean_rank_latent",)
LABELS = {
    "pairwise_latent": "pairwise identification (latent space)",
    "nway_latent": "n-way identification (latent space)",
    "mean_rank_latent": "mean rank of the true image (latent space)",
    "pairwise_image": "pairwise identification (image space)",
    "nway_image": "n-way identification (image space)",
    "gender_balanced_accuracy": "gender balanced accuracy",
    "gender_accuracy": "gender accuracy",
    "imagery_pairwise": "imagery identification",
    "pixel_correlation": "pixel correlation",
    "ssim": "SSIM",
    "pairwise_latent_uncentred": "pairwise identification, uncentred (paper; latent)",
    "nway_latent_uncentred": "n-way identification, uncentred (paper; latent)",
    "pairwise_image_uncentred": "pairwise identification, uncentred (paper; image)",
    "imagery_pairwise_uncentred": "imagery identification, uncentred (paper)",
}
#: One line per metric for the reports (the full definitions: docs/statistics.md).
DEFINITIONS = {
    "pairwise_latent": "fraction of the other test images whose latent vector correlates less with "
                       "the decoded vector than the image's own, all vectors minus the training mean "
                       "latent; chance 0.5",
    "nway_latent": "fraction of test images whose own latent vector correlates best with the decoded "
                   "one among all n (centred as above); chance 1/n",
    "mean_rank_latent": "mean rank of the true image among the n (1 = best; an affine function of "
                        "pairwise identification, same test); chance (n + 1)/2, lower is better",
    "pairwise_image": "pairwise identification of the reconstructions among the shown images, both "
                      "minus the reconstruction of the training mean latent; chance 0.5",
    "nway_image": "n-way identification in image space (centred as above); chance 1/n",
    "gender_balanced_accuracy": "mean of the male and female accuracies of the rule "
                                "(ẑ − training mean)·gender axis > 0; chance 0.5; ceiling: the rule on "
                                "the true latents",
    "gender_accuracy": "fraction of test images whose gender the rule calls right; chance: the exact "
                       "mean of its label-permutation null",
    "imagery_pairwise": "pairwise identification of the imagined face among the test faces; chance: "
                        "the exact mean of its null (only the imagined labels are permuted)",
    "pixel_correlation": "correlation over pixels of each reconstruction with the shown image; "
                         "baseline: the reconstruction of the training mean latent",
    "ssim": "structural similarity of each reconstruction with the shown image; baseline as above",
}


def metric_label(metric: str) -> str:
    """A metric's name for people."""
    return LABELS.get(metric, metric.replace("_", " "))


def p_label(p: float | None) -> str:
    """``p = 0.012``, ``p < 0.001`` or ``p n/a``."""
    if p is None or not np.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def chance_metrics_figure(rows: pd.DataFrame):
    """Participant results against chance: one panel per metric, one bar per latent space,
    the chance level dashed and each bar's p-value written beside it.

    Parameters
    ----------
    rows : DataFrame with columns ``metric, space, value, chance, p_value``

    Returns
    -------
    matplotlib Figure
    """
    rows = rows[~rows["metric"].map(lambda k: str(k).startswith(NOT_FRACTIONS))]  # with suffixes too
    metrics = [m for m in CHANCE_METRICS if m in set(rows["metric"])]
    metrics += [m for m in dict.fromkeys(rows["metric"]) if m not in metrics]
    spaces = list(dict.fromkeys(rows["space"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 0.4, 2.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        g = rows[rows["metric"] == metric].set_index("space")
        vals = [float(g.loc[s, "value"]) if s in g.index else np.nan for s in spaces]
        ax.bar(range(len(spaces)), vals, color=[f"C{i}" for i in range(len(spaces))], width=0.6)
        for i, s in enumerate(spaces):
            if s in g.index and np.isfinite(vals[i]):
                ax.text(i, vals[i] + 0.02, p_label(g.loc[s, "p_value"]), ha="center", va="bottom",
                        fontsize=7)
        # each space's own chance (imagery's and accuracy's depend on the data)
        chance = [float(g.loc[s, "chance"]) if s in g.index and pd.notna(g.loc[s, "chance"]) else np.nan
                  for s in spaces]
        if np.isfinite(chance).any():
            ax.hlines(chance, np.arange(len(spaces)) - 0.4, np.arange(len(spaces)) + 0.4,
                      linestyles="--", color="k", lw=0.9, label="chance")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_ylim(0, 1.12)
        ax.set_xticks(range(len(spaces)), spaces)
        ax.set_title(metric_label(metric), fontsize=8)
    fig.tight_layout()
    return fig


def per_image_figure(values: dict[str, np.ndarray], labels: list[str], chance: float = 0.5,
                     title: str = "pairwise identification per test image"):
    """Per-test-image scores of each space (points joined per space) with the chance line.

    Parameters
    ----------
    values : mapping space -> array of shape (N,)
    labels : list of N str (image names)

    Returns
    -------
    matplotlib Figure
    """
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.42 * n + 1.5), 2.8))
    for i, (space, v) in enumerate(values.items()):
        ax.plot(np.arange(n), v, "-o", ms=4, lw=0.8, color=f"C{i}", label=space)
    ax.axhline(chance, ls="--", color="k", lw=0.9, label="chance")
    ax.set_xticks(np.arange(n), labels, rotation=70, fontsize=6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=len(values) + 1, loc="lower left")
    fig.tight_layout()
    return fig


def group_metric_figure(table: pd.DataFrame, metric: str, p_values: dict[str, float] | None = None):
    """One metric across participants: each participant's value per space (joined by a line),
    the mean ± s.e.m., the chance level, and the group test's p-value per space.

    Parameters
    ----------
    table : DataFrame with columns ``subject, space, metric, value, chance``
    p_values : mapping space -> p of the group test, optional

    Returns
    -------
    matplotlib Figure
    """
    g = table[table["metric"] == metric]
    spaces = sorted(g["space"].unique())
    wide = g.pivot_table(index="subject", columns="space", values="value", aggfunc="first")
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(spaces), 3.0))
    x = np.arange(len(spaces))
    for _, row in wide.iterrows():
        ax.plot(x, [row.get(s, np.nan) for s in spaces], "-o", color="0.65", lw=0.8, ms=4)
    for i, s in enumerate(spaces):
        v = wide[s].dropna().to_numpy(float) if s in wide else np.zeros(0)
        if v.size:
            sem = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
            ax.errorbar(i + 0.12, v.mean(), yerr=sem, fmt="s", color="C3", ms=7, capsize=3,
                        label="mean ± s.e.m." if i == 0 else None)
            if p_values and s in p_values:
                ax.annotate(p_label(p_values[s]), (i, 1.0), xycoords=("data", "axes fraction"),
                            ha="center", va="bottom", fontsize=7)
    chance = [float(g.loc[g["space"] == s, "chance"].astype(float).mean()) for s in spaces]
    if np.isfinite(chance).any():  # each space's mean chance over participants
        ax.hlines(chance, x - 0.4, x + 0.4, linestyles="--", color="k", lw=0.8, label="chance")
    ax.set_xticks(x, spaces)
    ax.set_xlim(-0.5, len(spaces) - 0.5)
    ax.set_title(metric_label(metric), fontsize=9, pad=14)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def paired_figure(table: pd.DataFrame, metric: str, space_a: str, space_b: str,
                  p_value: float | None = None):
    """Paired comparison of two spaces: one point per participant (``a`` on x, ``b`` on y)
    and the identity line. Returns a matplotlib Figure."""
    g = table[table["metric"] == metric]
    wide = g.pivot_table(index="subject", columns="space", values="value", aggfunc="first")
    a, b = wide[space_a].to_numpy(float), wide[space_b].to_numpy(float)
    fig, ax = plt.subplots(figsize=(3.0, 3.0))
    ax.scatter(a, b, color="C0", zorder=3)
    for s, xa, xb in zip(wide.index, a, b, strict=True):
        ax.annotate(str(s), (xa, xb), fontsize=6, xytext=(3, 3), textcoords="offset points")
    lo = np.nanmin(np.r_[a, b, 0.4]) - 0.05
    hi = np.nanmax(np.r_[a, b, 1.0]) + 0.02
    ax.plot([lo, hi], [lo, hi], "--", color="0.5", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(space_a)
    ax.set_ylabel(space_b)
    ax.set_title(f"{metric_label(metric)}\n{p_label(p_value)} (paired)", fontsize=8)
    fig.tight_layout()
    return fig


def image_grid(rows: list[tuple[str, np.ndarray]], col_labels: list[str] | None = None,
               max_cols: int = 20, size: float = 0.9):
    """A grid of images: one row per ``(label, images (N,H,W,3))``, ``size`` inches per image.
    Returns a Figure."""
    n = min(max(len(imgs) for _, imgs in rows), max_cols)
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, (size + 0.05) * len(rows) + 0.3),
                             squeeze=False)
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
