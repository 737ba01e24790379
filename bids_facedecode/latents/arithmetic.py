"""Latent arithmetic: interpolation between faces and moving along a gender axis.

The gender axis is the paper's: ``mean(z | male) - mean(z | female)``. Moving a latent
``z`` by ``alpha`` gives ``z + alpha * axis`` (``alpha = 1`` adds one male-minus-female
difference of means).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import LatentModel


def interpolate(model: LatentModel, img_a: np.ndarray, img_b: np.ndarray,
                n_steps: int) -> np.ndarray:
    """Decode ``n_steps`` latents evenly spaced from ``encode(img_a)`` to ``encode(img_b)``.

    Parameters
    ----------
    model : LatentModel
    img_a, img_b : ndarray of shape (H, W, 3)
    n_steps : int
        At least 2 (both ends included).

    Returns
    -------
    images : ndarray of shape (n_steps, S, S, 3)
    """
    if n_steps < 2:
        raise ValueError(f"'n_steps' must be at least 2. Got {n_steps} instead.")
    z = model.encode(np.stack([img_a, img_b]))
    t = np.linspace(0.0, 1.0, n_steps, dtype=np.float32)[:, None]
    return model.decode((1.0 - t) * z[0] + t * z[1])


def gender_axis(latents: np.ndarray, is_male: np.ndarray) -> np.ndarray:
    """``mean(z | male) - mean(z | female)``.

    Parameters
    ----------
    latents : ndarray of shape (N, D)
    is_male : ndarray of shape (N,), bool

    Returns
    -------
    axis : ndarray of shape (D,), float32
    """
    z = np.asarray(latents, dtype=np.float64)
    m = np.asarray(is_male, dtype=bool)
    if z.ndim != 2 or m.shape != (len(z),):
        raise ValueError(f"'latents' must be (N, D) and 'is_male' (N,). Got {z.shape} and "
                         f"{m.shape}.")
    if m.all() or not m.any():
        raise DataError("gender axis: need at least one male and one female image")
    return (z[m].mean(0) - z[~m].mean(0)).astype(np.float32)


def move_along(model: LatentModel, latents: np.ndarray, axis: np.ndarray,
               alphas: np.ndarray) -> np.ndarray:
    """Decode ``z + alpha * axis`` for each latent and each alpha.

    Parameters
    ----------
    model : LatentModel
    latents : ndarray of shape (N, D) or (D,)
    axis : ndarray of shape (D,)
    alphas : ndarray of shape (K,)

    Returns
    -------
    images : ndarray of shape (N, K, S, S, 3)
    """
    z = np.atleast_2d(np.asarray(latents, dtype=np.float32))
    a = np.asarray(alphas, dtype=np.float32).ravel()
    moved = z[:, None, :] + a[None, :, None] * np.asarray(axis, dtype=np.float32)[None, None, :]
    imgs = model.decode(moved.reshape(-1, z.shape[1]))
    return imgs.reshape(len(z), len(a), *imgs.shape[1:])


def plot_latent_arithmetic(model: LatentModel, images: np.ndarray, is_male: np.ndarray,
                           out_path: str | Path, n_steps: int = 7, n_rows: int = 3,
                           alphas: np.ndarray | None = None, dpi: int = 80) -> Path:
    """Draw interpolations and gender-axis moves in one PNG figure (for the model card).

    Parameters
    ----------
    model : LatentModel
    images : ndarray of shape (N, H, W, 3)
        Faces used to estimate the gender axis; the first ``2 * n_rows`` are shown.
    is_male : ndarray of shape (N,), bool
    out_path : path-like
    n_steps : int
        Interpolation steps per row.
    n_rows : int
        Rows of each panel.
    alphas : ndarray of shape (K,), optional
        Steps along the gender axis (default ``-1.5 .. 1.5``).
    dpi : int

    Returns
    -------
    Path of the written figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = np.linspace(-1.5, 1.5, 7) if alphas is None else np.asarray(alphas)
    z = model.encode(images)
    axis = gender_axis(z, is_male)
    interp = [interpolate(model, images[2 * r], images[2 * r + 1], n_steps) for r in range(n_rows)]
    moved = move_along(model, z[:n_rows], axis, alphas)
    cols = max(n_steps, len(alphas)) + 1
    fig, axes = plt.subplots(2 * n_rows, cols, figsize=(1.1 * cols, 1.2 * 2 * n_rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r in range(n_rows):
        axes[r, 0].imshow(images[2 * r])
        axes[r, 0].set_title("input" if r == 0 else "", fontsize=7)
        for k in range(n_steps):
            axes[r, k + 1].imshow(interp[r][k])
            if r == 0:
                axes[r, k + 1].set_title(f"t={k / (n_steps - 1):.2f}", fontsize=7)
        axes[n_rows + r, 0].imshow(images[r])
        for k, a in enumerate(alphas):
            axes[n_rows + r, k + 1].imshow(moved[r, k])
            if r == 0:
                axes[n_rows + r, k + 1].set_title(f"{a:+.1f} gender", fontsize=7)
    fig.suptitle(f"{model.space} (D={model.latent_dim}): interpolation (top), "
                 "gender axis (bottom)", fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path
