"""PCA "eigenfaces": the paper's baseline latent space.

``z = (x - mean) Cᵀ`` (optionally divided by the component standard deviations when
whitened) and ``x̂ = clip(mean + z C, 0, 1)``, with ``x`` the flattened pixels of an
``S x S x 3`` image and ``C`` the ``(D, S*S*3)`` principal axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UsageError
from .base import LatentModel, batches, expect_shapes


def fit_pca(x: torch.Tensor, n_components: int, method: str = "auto", seed: int = 0,
            n_iter: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal components of the rows of ``x`` (pure function on tensors).

    Parameters
    ----------
    x : Tensor of shape (N, P)
        Samples by features.
    n_components : int
        ``K <= min(N, P)``.
    method : {"auto", "full", "randomized"}
        ``full`` uses ``torch.linalg.svd``; ``randomized`` uses ``torch.svd_lowrank``
        (Halko et al.); ``auto`` picks randomized when ``K < min(N, P) / 4``.
    seed : int
        Seed of the randomized method's test matrix.
    n_iter : int
        Power iterations of the randomized method.

    Returns
    -------
    mean : Tensor of shape (P,)
    components : Tensor of shape (K, P)
        Orthonormal rows, ordered by decreasing variance; each row's largest-magnitude
        entry is positive (a deterministic sign).
    explained_variance : Tensor of shape (K,)
        Variance of the data along each component (denominator ``N - 1``).
    """
    if x.ndim != 2:
        raise ValueError(f"'x' must be 2-D (N, P). Got shape {tuple(x.shape)} instead.")
    n, p = x.shape
    if not 1 <= n_components <= min(n, p):
        raise ValueError(f"'n_components' must be in [1, {min(n, p)}]. Got {n_components} instead.")
    if method not in ("auto", "full", "randomized"):
        raise ValueError(f"'method' must be auto, full or randomized. Got {method!r} instead.")
    if method == "auto":
        method = "randomized" if n_components < min(n, p) / 4 else "full"
    mean = x.mean(dim=0)
    xc = x - mean
    if method == "full":
        _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    else:
        gen_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            q = min(n_components + 10, min(n, p))
            _, s, v = torch.svd_lowrank(xc, q=q, niter=n_iter)
        finally:
            torch.random.set_rng_state(gen_state)
        vh = v.T
    comps = vh[:n_components]
    s = s[:n_components]
    idx = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(n_components), idx])
    signs[signs == 0] = 1
    comps = comps * signs[:, None]
    var = s**2 / max(n - 1, 1)
    return mean, comps.contiguous(), var


class PCAModel(LatentModel):
    """Eigenfaces of a face-image corpus.

    Parameters
    ----------
    mean : ndarray of shape (P,)
        Mean image, ``P = image_size**2 * 3``, pixel order (H, W, RGB).
    components : ndarray of shape (D, P)
    explained_variance : ndarray of shape (D,)
    image_size : int
    whiten : bool
        Divide latents by the component standard deviations (off by default).
    crop_factor : float
    device : str or torch.device
    meta : dict, optional
    """

    space = "pca"

    def __init__(self, mean: np.ndarray, components: np.ndarray, explained_variance: np.ndarray,
                 image_size: int, whiten: bool = False, crop_factor: float = 1.0,
                 device: str | torch.device = "cpu", meta: dict[str, Any] | None = None):
        self.device = torch.device(device)
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=self.device)
        self.components = torch.as_tensor(np.asarray(components), dtype=torch.float32,
                                          device=self.device)
        self.explained_variance = torch.as_tensor(np.asarray(explained_variance),
                                                  dtype=torch.float32, device=self.device)
        self.image_size = int(image_size)
        self.latent_dim = int(self.components.shape[0])
        self.whiten = bool(whiten)
        self.crop_factor = float(crop_factor)
        self.meta = dict(meta or {})
        p = self.image_size**2 * 3
        if self.mean.shape != (p,) or self.components.shape[1] != p:
            raise DataError(f"PCA model: mean/components do not match image_size {image_size}")
        self._scale = (torch.sqrt(self.explained_variance).clamp_min(1e-12) if self.whiten
                       else torch.ones_like(self.explained_variance))

    @classmethod
    def fit(cls, images: np.ndarray, n_components: int = 1024, image_size: int = 64,
            whiten: bool = False, crop_factor: float = 1.0, method: str = "auto",
            device: str | torch.device = "cpu", seed: int = 0,
            meta: dict[str, Any] | None = None) -> PCAModel:
        """Fit on a corpus of images.

        Parameters
        ----------
        images : ndarray of shape (N, H, W, 3)
            Float images in [0, 1]; cropped and resized to ``image_size``.
        n_components : int
            Requested ``D``; capped at ``min(N, P)`` (with a note in ``meta``).
        image_size, whiten, crop_factor, method, device, seed :
            See :class:`PCAModel` and :func:`fit_pca`.

        Returns
        -------
        PCAModel
        """
        from .base import prepare_images

        if n_components < 1:
            raise UsageError(f"'n_components' must be positive. Got {n_components} instead.")
        x = prepare_images(images, image_size, crop_factor).reshape(len(images), -1)
        if len(x) < 2:
            raise DataError(f"PCA needs at least 2 images, got {len(x)}")
        k = min(n_components, len(x), x.shape[1])
        xt = torch.from_numpy(x).to(device)
        mean, comps, var = fit_pca(xt, k, method=method, seed=seed)
        meta = dict(meta or {})
        meta.setdefault("training", {})
        meta["training"].update({"n_components_requested": int(n_components), "method": method})
        return cls(mean.cpu().numpy(), comps.cpu().numpy(), var.cpu().numpy(), image_size,
                   whiten=whiten, crop_factor=crop_factor, device=device, meta=meta)

    @torch.no_grad()
    def encode(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        x = self.prepare(images).reshape(len(images), -1)
        out = np.empty((len(x), self.latent_dim), dtype=np.float32)
        for sl in batches(len(x), batch_size):
            xb = torch.from_numpy(x[sl]).to(self.device)
            out[sl] = (((xb - self.mean) @ self.components.T) / self._scale).cpu().numpy()
        return out

    @torch.no_grad()
    def decode(self, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
        z = self.check_latents(latents)
        s = self.image_size
        out = np.empty((len(z), s, s, 3), dtype=np.float32)
        for sl in batches(len(z), batch_size):
            zb = torch.from_numpy(z[sl]).to(self.device) * self._scale
            xb = (self.mean + zb @ self.components).clamp(0.0, 1.0)
            out[sl] = xb.reshape(-1, s, s, 3).cpu().numpy()
        return out

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "components": self.components,
                "explained_variance": self.explained_variance}

    def config_dict(self) -> dict[str, Any]:
        return {"architecture": {"name": "pca", "whiten": self.whiten,
                                 "n_pixels": self.image_size**2 * 3}}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                   device: str | torch.device, source: Path) -> PCAModel:
        d, s = config["latent_dim"], config["image_size"]
        p = s * s * 3
        expect_shapes(tensors, {"mean": (p,), "components": (d, p), "explained_variance": (d,)},
                      source)
        arch = config.get("architecture", {})
        return cls(tensors["mean"].numpy(), tensors["components"].numpy(),
                   tensors["explained_variance"].numpy(), s,
                   whiten=bool(arch.get("whiten", False)),
                   crop_factor=float(config.get("crop_factor", 1.0)), device=device,
                   meta={"training": config.get("training", {})})
