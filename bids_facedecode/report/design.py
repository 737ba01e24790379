"""The design matrix of one run: column groups, regressor correlations and their figures."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_LATENT = re.compile(r"^(.+)_z(\d+)$")
_RUN_SPECIFIC = re.compile(r"^(drift_\d+|constant|intercept)$")


def column_group(name: str) -> str:
    """The block a design column belongs to: ``<space> latents``, ``face``, ``test``,
    ``imagery``, ``drift``, or the nuisance trial type / confound name itself."""
    m = _LATENT.match(name)
    if m:
        return f"{m.group(1)} latents"
    if name == "face":
        return "face"
    if name.startswith("test_"):
        return "test"
    if name.startswith("img_"):
        return "imagery"
    if _RUN_SPECIFIC.match(name):
        return "drift + intercept"
    return name


def column_groups(columns: list[str]) -> list[tuple[str, int, int]]:
    """Consecutive runs of columns in the same group: ``[(group, start, stop), ...]``."""
    out: list[tuple[str, int, int]] = []
    for i, c in enumerate(columns):
        g = column_group(c)
        if out and out[-1][0] == g and out[-1][2] == i:
            out[-1] = (g, out[-1][1], i + 1)
        else:
            out.append((g, i, i + 1))
    return out


def regressor_correlations(design: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The most correlated pairs of task regressors (drift and intercept excluded).

    Parameters
    ----------
    design : DataFrame of shape (T, P)

    Returns
    -------
    DataFrame with columns ``a, b, r`` (Pearson correlation over volumes), the ``top`` pairs
    with the largest ``|r|``; constant columns are left out.
    """
    task = design[[c for c in design.columns if column_group(c) != "drift + intercept"]]
    task = task.loc[:, task.std(axis=0) > 0]
    r = np.corrcoef(task.to_numpy(dtype=float), rowvar=False)
    iu = np.triu_indices_from(r, k=1)
    order = np.argsort(-np.abs(r[iu]), kind="stable")[:top]
    cols = list(task.columns)
    return pd.DataFrame({"a": [cols[iu[0][k]] for k in order], "b": [cols[iu[1][k]] for k in order],
                         "r": r[iu][order]})


def group_correlations(design: pd.DataFrame) -> pd.DataFrame:
    """Largest ``|r|`` between any column of one block and any column of another (task blocks).

    Returns
    -------
    DataFrame of shape (n_groups, n_groups), index and columns the group names.
    """
    task = design[[c for c in design.columns if column_group(c) != "drift + intercept"]]
    task = task.loc[:, task.std(axis=0) > 0]
    r = np.abs(np.corrcoef(task.to_numpy(dtype=float), rowvar=False))
    np.fill_diagonal(r, np.nan)
    groups = [column_group(c) for c in task.columns]
    names = list(dict.fromkeys(groups))
    g = np.array(groups)
    out = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            block = r[np.ix_(g == a, g == b)]
            if np.isfinite(block).any():
                out.loc[a, b] = np.nanmax(block)
    return out


def design_matrix_figure(design: pd.DataFrame, t_r: float | None = None):
    """The design matrix as images (each column scaled to its maximum absolute value): the
    latent blocks on the left, every other column (face, test, imagery, nuisance, drift)
    labelled on the right. Returns a matplotlib Figure."""
    x = design.to_numpy(dtype=float)
    scale = np.abs(x).max(axis=0)
    x = x / np.where(scale > 0, scale, 1)
    latent = np.array([column_group(c).endswith(" latents") for c in design.columns])
    others = [c for c, is_lat in zip(design.columns, latent, strict=True) if not is_lat]
    panels = [p for p in (("latents", latent), ("other", ~latent)) if p[1].any()]
    widths = [6 if name == "latents" else max(2.0, 0.16 * mask.sum()) for name, mask in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(min(14, sum(widths) + 1), 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (name, mask) in zip(axes[0], panels, strict=True):
        ax.imshow(x[:, mask], aspect="auto", cmap="gray", interpolation="nearest", vmin=-1, vmax=1)
        cols = [c for c, m in zip(design.columns, mask, strict=True) if m]
        if name == "latents":
            ticks, labels = [], []
            for g, a, b in column_groups(cols):
                ax.axvline(a - 0.5, color="C1", lw=0.8)
                ticks.append((a + b - 1) / 2)
                labels.append(f"{g} ({b - a})")
            ax.set_xticks(ticks, labels, fontsize=8)
            ax.set_ylabel(f"volume (TR {t_r:g} s)" if t_r else "volume")
        else:
            ax.set_xticks(range(len(others)), others, rotation=90, fontsize=6)
            if len(panels) == 1:
                ax.set_ylabel(f"volume (TR {t_r:g} s)" if t_r else "volume")
            else:
                ax.set_yticks([])
    fig.suptitle(f"design matrix, {design.shape[0]} volumes x {design.shape[1]} columns", fontsize=9)
    fig.tight_layout()
    return fig


def group_correlation_figure(corr: pd.DataFrame):
    """Heat map of :func:`group_correlations`. Returns a matplotlib Figure."""
    n = len(corr)
    fig, ax = plt.subplots(figsize=(2.4 + 0.55 * n, 1.6 + 0.5 * n))
    im = ax.imshow(corr.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), corr.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), corr.index, fontsize=7)
    for i in range(n):
        for j in range(n):
            v = corr.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if v < 0.6 else "k")
    fig.colorbar(im, ax=ax, fraction=0.046, label="max |r|")
    ax.set_title("largest |correlation| between blocks", fontsize=9)
    fig.tight_layout()
    return fig
