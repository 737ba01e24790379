"""Latent spaces of faces: PCA eigenfaces, a VAE-GAN, and precomputed latent tables.

One interface (:class:`LatentModel`: ``encode``, ``decode``, ``save``, ``load``) for
both model kinds; :func:`load_latent_model` loads a shipped model by name (``"pca"``,
``"vaegan"``) or a model directory; :func:`load_latent_table` reads precomputed latents.
"""

from .base import LatentModel
from .pca import PCAModel
from .precomputed import LatentTable, load_latent_table, write_latent_table
from .registry import load_latent_model, shipped_models
from .vaegan import VAEGANModel
from .vaegan_nets import ARCHS, VAEGANArch, get_arch

__all__ = [
    "ARCHS",
    "LatentModel",
    "LatentTable",
    "PCAModel",
    "VAEGANArch",
    "VAEGANModel",
    "get_arch",
    "load_latent_model",
    "load_latent_table",
    "shipped_models",
    "write_latent_table",
]
