"""The latent-model interface and what every model directory shares.

A latent model maps face images to vectors ``z`` of dimension ``D`` and back. A model
directory holds ``config.json`` (what the model is and how it was made) and
``model.safetensors`` (its tensors). Saving is atomic: a crashed save never leaves a
directory that :meth:`LatentModel.load` would take for a model.
"""

from __future__ import annotations

import abc
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import CantCreateError, DataError, NoInputError
from ..images import resize_batch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


class LatentModel(abc.ABC):
    """A map between face images and latent vectors.

    Attributes
    ----------
    space : str
        ``"pca"`` or ``"vaegan"``.
    latent_dim : int
        ``D``, the length of a latent vector.
    image_size : int
        ``S``: images are centre-cropped and resized to ``S x S`` before encoding, and
        decoded images have that size.
    crop_factor : float
        Fraction of the square's side kept around the centre before resizing (the
        paper used 0.8 on CelebA photos; 1.0 keeps the whole square).
    meta : dict
        Provenance written to ``config.json`` (training data hash, seed, epochs, ...).
    """

    space: str
    latent_dim: int
    image_size: int
    crop_factor: float = 1.0
    meta: dict[str, Any]

    # ----------------------------------------------------------------- interface
    @abc.abstractmethod
    def encode(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Map images to latents.

        Parameters
        ----------
        images : ndarray of shape (N, H, W, 3) or (N, H, W)
            Float images in [0, 1]; they are cropped/resized to ``image_size``.
        batch_size : int
            Images processed at once (bounds memory).

        Returns
        -------
        latents : ndarray of shape (N, D), float32
        """

    @abc.abstractmethod
    def decode(self, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Map latents to images.

        Parameters
        ----------
        latents : ndarray of shape (N, D)
        batch_size : int

        Returns
        -------
        images : ndarray of shape (N, S, S, 3), float32 in [0, 1]
        """

    def encode_paths(self, paths: list[str | Path], batch_size: int = 256) -> np.ndarray:
        """Map image files to latents: :meth:`encode` of the files read at ``image_size``
        (centre square, bicubic), or as the model's own preprocessing reads them.

        Parameters
        ----------
        paths : list of path-like
        batch_size : int

        Returns
        -------
        latents : ndarray of shape (N, D), float32
        """
        from ..images import load_images

        return self.encode(load_images(list(paths), self.image_size), batch_size)

    def images_of(self, paths: list[str | Path]) -> np.ndarray:
        """Image files framed as the encoder sees them (the crop and size of :meth:`encode_paths`).

        Reconstructions are compared with these, so that a model that crops its input is scored
        against the same frame it encoded.

        Parameters
        ----------
        paths : list of path-like

        Returns
        -------
        images : ndarray of shape (N, image_size, image_size, 3), float32 in [0, 1]
        """
        from ..images import load_images

        return self.prepare(load_images(list(paths), self.image_size))

    @abc.abstractmethod
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors saved in ``model.safetensors`` (CPU, contiguous)."""

    @abc.abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """Model-specific part of ``config.json`` (architecture, options)."""

    @classmethod
    @abc.abstractmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                   device: str | torch.device, source: Path) -> LatentModel:
        """Rebuild a model from its ``config.json`` and tensors (raise DataError if inconsistent)."""

    def fingerprint(self) -> str:
        """SHA-1 of everything that decides what :meth:`encode` returns: the kind, sizes and
        configuration of the model and all its tensors (computed once per instance).

        Returns
        -------
        str
            40 hex digits.
        """
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            h = hashlib.sha1()
            head = {"space": self.space, "latent_dim": self.latent_dim, "image_size": self.image_size,
                    "crop_factor": self.crop_factor, "config": self.config_dict()}
            h.update(json.dumps(head, sort_keys=True, default=str).encode())
            for name, t in sorted(self.state_tensors().items()):
                t = t.detach().cpu().contiguous().reshape(-1)
                h.update(f"\n{name} {t.dtype} {t.numel()}\n".encode())
                h.update(t.view(torch.uint8).numpy().tobytes())
            cached = self._fingerprint = h.hexdigest()
        return cached

    # ----------------------------------------------------------------- save/load
    def save(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically.

        A new directory is written under a temporary name and renamed; in an existing
        directory (e.g. one holding training checkpoints) each file is written to a
        temporary name and renamed over the old one, weights first, config last.
        """
        directory = Path(directory)
        config = {
            "kind": self.space,
            "format_version": FORMAT_VERSION,
            "latent_dim": int(self.latent_dim),
            "image_size": int(self.image_size),
            "crop_factor": float(self.crop_factor),
            **self.config_dict(),
            "training": self.meta.get("training", {}),
            **({"refinement": self.meta["refinement"]} if self.meta.get("refinement") else {}),
            "versions": library_versions(),
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_tensors().items()}
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            if directory.exists():
                _write_files_in_place(directory, config, tensors)
            else:
                tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
                try:
                    save_file(tensors, str(tmp / WEIGHTS_NAME))
                    (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
                    for name in (WEIGHTS_NAME, CONFIG_NAME):
                        os.chmod(tmp / name, SHARED_FILE_MODE)
                    os.chmod(tmp, SHARED_DIR_MODE)  # mkdtemp makes it private (0700)
                    os.replace(tmp, directory)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
        except OSError as exc:
            raise CantCreateError(f"{directory}: cannot write latent model ({exc})") from exc

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> LatentModel:
        """Read a model directory written by :meth:`save`.

        Raises
        ------
        NoInputError
            The directory does not exist.
        DataError
            The directory is not a model of this kind, or its files are corrupt.
        """
        config, tensors = read_model_dir(directory)
        kind = getattr(cls, "space", None)
        if kind is not None and config["kind"] != kind:
            raise DataError(f"{Path(directory) / CONFIG_NAME}: model kind is "
                            f"'{config['kind']}', expected '{kind}'")
        return cls.from_saved(config, tensors, device, Path(directory))

    # ----------------------------------------------------------------- helpers
    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Validate a batch and bring it to ``(N, S, S, 3)`` float32 (crop + resize)."""
        return prepare_images(images, self.image_size, self.crop_factor)

    def check_latents(self, latents: np.ndarray) -> np.ndarray:
        """Validate a latent batch: returns float32 ``(N, D)``."""
        z = np.asarray(latents, dtype=np.float32)
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise DataError(f"latents: expected shape (N, {self.latent_dim}) for this "
                            f"{self.space} model, got {tuple(np.shape(latents))}")
        if not np.all(np.isfinite(z)):
            raise DataError("latents: contain NaN or infinite values")
        return z

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(space={self.space!r}, latent_dim={self.latent_dim}, "
                f"image_size={self.image_size})")


# --------------------------------------------------------------------- functions
def read_model_dir(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check ``config.json`` + ``model.safetensors`` of a model directory."""
    directory = Path(directory)
    if not directory.exists():
        raise NoInputError(f"{directory}: latent model directory not found")
    if not directory.is_dir():
        raise DataError(f"{directory}: a latent model must be a directory holding "
                        f"{CONFIG_NAME} and {WEIGHTS_NAME}")
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise DataError(f"{directory}: not a latent model directory ({p.name} missing)")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{cfg_path}: corrupt model config ({exc})") from exc
    if not isinstance(config, dict):
        raise DataError(f"{cfg_path}: model config must be a JSON object")
    for key, typ in (("kind", str), ("latent_dim", int), ("image_size", int)):
        if not isinstance(config.get(key), typ):
            raise DataError(f"{cfg_path}: '{key}' missing or not a {typ.__name__}")
    if config["latent_dim"] < 1 or config["image_size"] < 1:
        raise DataError(f"{cfg_path}: 'latent_dim' and 'image_size' must be positive")
    try:
        tensors = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{w_path}: corrupt weights file ({exc})") from exc
    return config, tensors


def expect_shapes(tensors: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]],
                  source: Path) -> None:
    """Raise DataError unless ``tensors`` holds exactly these names with these shapes."""
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise DataError(f"{source / WEIGHTS_NAME}: tensors missing: {', '.join(missing[:5])}")
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != tuple(shape):
            raise DataError(f"{source / WEIGHTS_NAME}: tensor '{name}' has shape "
                            f"{tuple(tensors[name].shape)}, config implies {tuple(shape)}")


def prepare_images(images: np.ndarray, size: int, crop_factor: float = 1.0) -> np.ndarray:
    """Bring an image batch to ``(N, size, size, 3)`` float32 in [0, 1].

    Parameters
    ----------
    images : ndarray of shape (N, H, W, 3), (N, H, W, 4) or (N, H, W)
        Gray images are repeated over RGB; an alpha channel is dropped.
    size : int
    crop_factor : float
        Fraction of the centred square kept before resizing (1.0 = all of it).

    Returns
    -------
    ndarray of shape (N, size, size, 3), float32
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 4 or x.shape[-1] not in (3, 4):
        raise DataError(f"images: expected an array of shape (N, H, W, 3), got {x.shape}")
    x = x[..., :3].astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise DataError("images: contain NaN or infinite values")
    if x.size and (x.min() < -1e-3 or x.max() > 1.0 + 1e-3):
        raise DataError(f"images: values must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
    x = np.clip(x, 0.0, 1.0)
    if crop_factor < 1.0:
        x = centre_crop(x, crop_factor)
    return resize_batch(x, size)


def centre_crop(images: np.ndarray, crop_factor: float) -> np.ndarray:
    """Crop the centred square of each image, then keep ``crop_factor`` of its side.

    This is the preprocessing of the paper's ``preprocess128``. ``images`` (N, H, W, C).
    """
    h, w = images.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    m = int(round(s * (1.0 - crop_factor) / 2.0))
    return images[:, top + m: top + s - m, left + m: left + s - m]


def batches(n: int, batch_size: int) -> Iterable[slice]:
    """Slices that cover ``range(n)`` in chunks of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"'batch_size' must be positive. Got {batch_size} instead.")
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def data_hash(content_hashes: Iterable[str]) -> str:
    """SHA-1 of the sorted list of per-image content hashes (the training-data identity)."""
    h = hashlib.sha1()
    for item in sorted(content_hashes):
        h.update(item.encode("ascii") + b"\n")
    return h.hexdigest()


def array_hashes(images: np.ndarray) -> list[str]:
    """Content hashes of in-memory images ``(N, H, W, 3)``: SHA-1 of their uint8 bytes."""
    from ..images import to_uint8

    return [hashlib.sha1(np.ascontiguousarray(to_uint8(im)).tobytes()).hexdigest() for im in images]


def library_versions() -> dict[str, str]:
    """Versions of the software that matters for reproducing a model."""
    import numpy
    import safetensors

    return {
        "bids_facedecode": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": getattr(safetensors, "__version__", "unknown"),
        "cuda": str(torch.version.cuda) if torch.version.cuda else "none",
    }


def command_line() -> str:
    """The command line of this process, for provenance."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


# modes of saved models and tables (as the derivatives): a lab shares its models on a cluster
SHARED_FILE_MODE = 0o644
SHARED_DIR_MODE = 0o755


def _write_files_in_place(directory: Path, config: dict[str, Any],
                          tensors: dict[str, torch.Tensor]) -> None:
    fd, tmp_w = tempfile.mkstemp(prefix=f".{WEIGHTS_NAME}.", dir=directory)
    os.close(fd)
    fd, tmp_c = tempfile.mkstemp(prefix=f".{CONFIG_NAME}.", dir=directory)
    os.close(fd)
    try:
        save_file(tensors, tmp_w)
        Path(tmp_c).write_text(json.dumps(config, indent=2) + "\n")
        for tmp in (tmp_w, tmp_c):  # mkstemp makes them private (0600)
            os.chmod(tmp, SHARED_FILE_MODE)
        # the config goes last: a reader that sees the new config also sees the new weights
        (directory / CONFIG_NAME).unlink(missing_ok=True)
        os.replace(tmp_w, directory / WEIGHTS_NAME)
        os.replace(tmp_c, directory / CONFIG_NAME)
    finally:
        for p in (tmp_w, tmp_c):
            Path(p).unlink(missing_ok=True)
