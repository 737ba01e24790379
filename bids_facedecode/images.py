"""Image files: content hashing, loading with centre crop and resize, saving.

Images travel through the package as float32 arrays of shape ``(H, W, 3)`` (one
image) or ``(N, H, W, 3)`` (a batch), values in ``[0, 1]``, RGB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DataError, NoInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def content_hash(path: str | Path, algorithm: str = "sha1") -> str:
    """Return the hex digest of a file's bytes (stimuli are identified by their SHA-1).

    ``algorithm`` is any name :func:`hashlib.new` knows (``"sha256"`` for tables keyed so).
    """
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_square(img: Image.Image) -> Image.Image:
    """Centre-crop a PIL image to a square of its shorter side."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read an image file as RGB float32 in [0, 1].

    Parameters
    ----------
    path : path-like
        Image file (any format Pillow reads).
    size : int, optional
        When given, centre-crop to a square and resize to ``size x size`` (bicubic).

    Returns
    -------
    image : ndarray of shape (H, W, 3), float32
    """
    path = Path(path)
    if not path.is_file():
        raise NoInputError(f"{path}: image file not found")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None:
                im = to_square(im).resize((size, size), Image.Resampling.BICUBIC)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc
    return arr


def load_images(paths: list[str | Path], size: int) -> np.ndarray:
    """Load several images at one size. Returns ndarray of shape (N, size, size, 3)."""
    out = np.empty((len(paths), size, size, 3), dtype=np.float32)
    for i, p in enumerate(paths):
        out[i] = load_image(p, size)
    return out


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """Resize a batch ``(N, H, W, 3)`` in [0, 1] to ``(N, size, size, 3)`` (bicubic)."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[1] == size and images.shape[2] == size:
        return images
    out = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, img in enumerate(images):
        pil = Image.fromarray(to_uint8(img))
        out[i] = np.asarray(to_square(pil).resize((size, size), Image.Resampling.BICUBIC),
                            dtype=np.float32) / 255.0
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clip a float image in [0, 1] and convert to uint8."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(image: np.ndarray, path: str | Path, quality: int = 95) -> None:
    """Write one ``(H, W, 3)`` float image in [0, 1] to ``path`` (format from the suffix)."""
    path = Path(path)
    kwargs = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(to_uint8(image)).save(path, **kwargs)


def png_bytes(image: np.ndarray) -> bytes:
    """One ``(H, W, 3)`` float image in [0, 1] as PNG bytes."""
    import io

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def list_images(folder: str | Path) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoInputError(f"{folder}: image folder not found")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
