"""Finding and loading latent models: shipped names or model directories."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError, NoInputError
from .base import LatentModel, read_model_dir
from .pca import PCAModel
from .vaegan import VAEGANModel

MODEL_KINDS: dict[str, type[LatentModel]] = {"pca": PCAModel, "vaegan": VAEGANModel}
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "models"


def shipped_models() -> list[str]:
    """Names of the models shipped inside the package (``pca``, ``vaegan``)."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_dir(name_or_dir: str | Path) -> Path:
    """A shipped model's name -> its directory; any other value is taken as a path."""
    path = Path(name_or_dir)
    if isinstance(name_or_dir, str) and name_or_dir in MODEL_KINDS and not path.exists():
        shipped = SHIPPED_DIR / name_or_dir
        if not (shipped / "config.json").is_file():
            raise NoInputError(f"{shipped}: the shipped '{name_or_dir}' model is missing from "
                               "this installation (train one with bids_facedecode-train-latents)")
        return shipped
    return path


def load_latent_model(name_or_dir: str | Path, device: str | torch.device = "cpu") -> LatentModel:
    """Load a latent model.

    Parameters
    ----------
    name_or_dir : str or path-like
        ``"pca"`` or ``"vaegan"`` for the shipped models, or a model directory
        (``config.json`` + ``model.safetensors``).
    device : str or torch.device

    Returns
    -------
    LatentModel
    """
    directory = resolve_model_dir(name_or_dir)
    config, _ = read_model_dir(directory)
    kind = config["kind"]
    if kind not in MODEL_KINDS:
        raise DataError(f"{directory / 'config.json'}: unknown model kind '{kind}' "
                        f"(expected one of {', '.join(MODEL_KINDS)})")
    return MODEL_KINDS[kind].load(directory, device=device)
