"""Training images: a torch ``Dataset`` over a folder or an array, and a resumable sampler.

The sampler draws a fresh permutation per epoch from ``(seed, epoch)`` and, when
``hflip`` is on, a left-right flip per draw; items are ``(index, flip)`` pairs, so what a
batch holds does not depend on the number of workers, and training can resume in the
middle of an epoch by skipping the batches already seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DataError
from ..images import content_hash, list_images, to_square
from .base import array_hashes, prepare_images


def load_training_image(path: str | Path, size: int, crop_factor: float = 1.0) -> np.ndarray:
    """Read an image, centre-crop a square (then ``crop_factor`` of it), resize to ``size``.

    Returns
    -------
    ndarray of shape (size, size, 3), float32 in [0, 1]
    """
    try:
        with Image.open(path) as im:
            im = to_square(im.convert("RGB"))
            if crop_factor < 1.0:
                s = im.size[0]
                m = int(round(s * (1.0 - crop_factor) / 2.0))
                im = im.crop((m, m, s - m, s - m))
            im = im.resize((size, size), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


class FaceImages(Dataset):
    """Face images as ``(3, S, S)`` float32 tensors in [0, 1].

    Build with :meth:`from_folder` (streams files) or :meth:`from_array` (in memory).
    Items are addressed by ``(index, flip)``; an ``int`` index means no flip.
    """

    def __init__(self, size: int, crop_factor: float = 1.0, paths: Sequence[Path] | None = None,
                 array: np.ndarray | None = None, hashes: list[str] | None = None,
                 source: str = ""):
        self.size, self.crop_factor = int(size), float(crop_factor)
        self.paths = list(paths) if paths is not None else None
        self.array = array
        self.hashes = hashes or []
        self.source = source

    @classmethod
    def from_folder(cls, folder: str | Path, size: int, crop_factor: float = 1.0,
                    max_images: int | None = None) -> FaceImages:
        """All images under ``folder`` (sorted by path; the first ``max_images`` of them)."""
        paths = list_images(folder)
        if max_images is not None:
            paths = paths[:max_images]
        if not paths:
            raise DataError(f"{folder}: no image files (jpg/png/...) found")
        return cls(size, crop_factor, paths=paths, hashes=[content_hash(p) for p in paths],
                   source=str(folder))

    @classmethod
    def from_array(cls, images: np.ndarray, size: int, crop_factor: float = 1.0,
                   max_images: int | None = None) -> FaceImages:
        """In-memory images ``(N, H, W, 3)`` in [0, 1]."""
        if max_images is not None:
            images = images[:max_images]
        arr = prepare_images(images, size, crop_factor)
        return cls(size, crop_factor, array=np.ascontiguousarray(arr.transpose(0, 3, 1, 2)),
                   hashes=array_hashes(arr), source="array")

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else len(self.array)

    def __getitem__(self, item: int | tuple[int, bool]) -> torch.Tensor:
        idx, flip = (item, False) if isinstance(item, int | np.integer) else item
        if self.paths is not None:
            img = load_training_image(self.paths[idx], self.size, self.crop_factor)
            x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        else:
            x = torch.from_numpy(self.array[idx])
        return torch.flip(x, dims=(2,)) if flip else x

    def load_all(self, workers: int = 0, batch_size: int = 256) -> np.ndarray:
        """Every image as one array ``(N, S, S, 3)`` (used to fit PCA)."""
        if self.array is not None:
            return self.array.transpose(0, 2, 3, 1)
        loader = torch.utils.data.DataLoader(self, batch_size=batch_size, shuffle=False,
                                             num_workers=workers)
        out = np.empty((len(self), self.size, self.size, 3), dtype=np.float32)
        pos = 0
        for xb in loader:
            out[pos:pos + len(xb)] = xb.permute(0, 2, 3, 1).numpy()
            pos += len(xb)
        return out


class EpochSampler(Sampler):
    """Yields ``(index, flip)`` for one epoch, from batch ``start_batch`` on.

    Parameters
    ----------
    n : int
        Dataset size.
    batch_size : int
    seed : int
    hflip : bool
        Draw a random left-right flip for each item.
    """

    def __init__(self, n: int, batch_size: int, seed: int, hflip: bool = True):
        self.n, self.batch_size, self.seed, self.hflip = n, batch_size, seed, hflip
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        flips = rng.random(self.n) < 0.5 if self.hflip else np.zeros(self.n, dtype=bool)
        stop = self.batches_per_epoch * self.batch_size
        for k in range(self.start_batch * self.batch_size, stop):
            yield int(order[k]), bool(flips[k])


def epoch_loader(data: FaceImages, sampler: EpochSampler, epoch: int, workers: int,
                 device: torch.device, seed: int, start_batch: int = 0) -> DataLoader:
    """The batches of one epoch of ``sampler`` (from ``start_batch`` on), as a DataLoader.

    The loader draws from its own generator, seeded with ``seed + epoch``, so the global RNG
    (the VAE-GAN's noise) stays resumable; memory is pinned for a CUDA ``device``.
    """
    sampler.set_epoch(epoch, start_batch)
    return DataLoader(data, batch_size=sampler.batch_size, sampler=sampler, drop_last=True,
                      num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed + epoch))
