"""Reconstruction quality: pixel correlation and SSIM of paired images, and the mean-face
baseline they are compared with (definitions: ``docs/statistics.md``)."""

from __future__ import annotations

import numpy as np

from .errors import DataError


def _image_pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"images: shapes {a.shape} and {b.shape} differ")
    if a.ndim == 2:  # one grayscale image
        a, b = a[None], b[None]
    elif a.ndim == 3 and a.shape[-1] in (1, 3, 4):  # one colour image
        a, b = a[None], b[None]
    return a, b


def pixel_correlation(a, b) -> np.ndarray:
    """Pearson correlation between paired images, over all pixels and channels.

    Parameters
    ----------
    a, b : arrays of shape (N, H, W, 3) (or one image (H, W, 3) / (H, W))

    Returns
    -------
    ndarray of shape (N,)
    """
    a, b = _image_pairs(a, b)
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def ssim(a, b, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity of paired images (scikit-image, Gaussian-free 7×7 default).

    Parameters
    ----------
    a, b : arrays of shape (N, H, W, 3) in [0, data_range] (or one image)
    data_range : float

    Returns
    -------
    ndarray of shape (N,)
    """
    from skimage.metrics import structural_similarity

    a, b = _image_pairs(a, b)
    channel_axis = -1 if a.ndim == 4 else None
    return np.array(
        [
            structural_similarity(x, y, data_range=data_range, channel_axis=channel_axis)
            for x, y in zip(a, b, strict=True)
        ]
    )


def mean_face_baseline(mean_face, shown) -> tuple[np.ndarray, np.ndarray]:
    """Pixel correlation and SSIM of one image (the reconstruction of the training mean
    latent) with every shown image: what a decoder that knows nothing scores.

    Parameters
    ----------
    mean_face : array of shape (H, W, 3)
    shown : array of shape (N, H, W, 3)

    Returns
    -------
    pixel_r, ssim : ndarrays of shape (N,)
    """
    shown = np.asarray(shown, dtype=np.float64)
    face = np.broadcast_to(np.asarray(mean_face, dtype=np.float64), shown.shape)
    return pixel_correlation(face, shown), ssim(face, shown)
