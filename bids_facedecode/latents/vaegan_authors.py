"""The authors' VAE-GAN graph (github rufinv/VAE-GAN-CelebA, ``libs/make_network.py``) in torch.

The networks hold the published TensorFlow 1 checkpoint's tensors and compute what its graph
computes at test time (``is_training=False``):

- input: images in [0, 1], NHWC in TensorFlow (NCHW here);
- encoder: per layer conv 3x3 stride 2 with TensorFlow ``SAME`` padding (for an even side
  ``n`` that is 0 rows/columns before and 1 after), bias, batch norm, ELU; then a linear layer
  on the feature map flattened in (H, W, C) order, without activation; ``mu = tanh(linear)``
  and ``log sigma = 0.5 tanh(linear)``;
- generator: linear with ELU, reshaped (H, W, C) to ``base x base x C``, then per layer a
  transposed conv 3x3 stride 2 (``SAME``: the output side doubles), bias, batch norm, ELU,
  the last (RGB) layer included;
- batch norm: ``batch_norm_with_global_normalization``: ``(x - m) / sqrt(v + 1e-6) * gamma +
  beta`` with ``m, v`` the exponential moving averages of the batch moments.

The authors' scripts then divide generated images by the batch maximum and clip them to [0, 1]
(:func:`authors_deprocess`), and prepare photos with ``preprocess128``
(:func:`authors_preprocess`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError

#: ``variance_epsilon`` of the authors' batch norm
BN_EPSILON = 1e-6


def _same_pad_stride2(side: int, kernel: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (before, after) of a stride-2 conv on ``side`` pixels."""
    out = -(-side // 2)
    total = max((out - 1) * 2 + kernel - side, 0)
    return total // 2, total - total // 2


class AuthorsConv(nn.Module):
    """Conv ``k x k`` stride 2, TensorFlow ``SAME`` padding, bias, batch norm, ELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, eps: float = BN_EPSILON):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=2, padding=0, bias=True)
        self.bn = nn.BatchNorm2d(c_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = _same_pad_stride2(x.shape[2], self.kernel)
        pw = _same_pad_stride2(x.shape[3], self.kernel)
        x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.elu(self.bn(self.conv(x)))


class AuthorsDeconv(nn.Module):
    """Transposed conv ``k x k`` stride 2 doubling the side (TensorFlow ``SAME``), bias, batch
    norm, ELU.

    TensorFlow's transposed conv is the adjoint of the ``SAME`` conv from ``2n`` to ``n``
    pixels, which pads ``p0`` before and ``p1`` after: the full transposed conv
    (``(n - 1) * 2 + k`` pixels) with ``p0`` pixels dropped before and the rest after.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, eps: float = BN_EPSILON):
        super().__init__()
        self.kernel = kernel
        self.deconv = nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=0, bias=True)
        self.bn = nn.BatchNorm2d(c_out, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = 2 * x.shape[2], 2 * x.shape[3]
        ph, pw = _same_pad_stride2(h, self.kernel)[0], _same_pad_stride2(w, self.kernel)[0]
        y = self.deconv(x)[:, :, ph: ph + h, pw: pw + w]
        return F.elu(self.bn(y))


class AuthorsEncoder(nn.Module):
    """Images ``(N, 3, S, S)`` in [0, 1] -> ``mu, logvar`` each ``(N, D)``.

    ``logvar = 2 log sigma = tanh(.)``, for the interface shared with the other VAE-GANs.
    """

    def __init__(self, channels: tuple[int, ...], base: int, hidden: int, latent_dim: int,
                 kernel: int = 3, eps: float = BN_EPSILON):
        super().__init__()
        chans = (3, *channels)
        self.convs = nn.Sequential(*[AuthorsConv(a, b, kernel, eps)
                                     for a, b in zip(chans[:-1], chans[1:], strict=True)])
        self.fc = nn.Linear(channels[-1] * base * base, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.log_sigma = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x).permute(0, 2, 3, 1).flatten(1)  # (H, W, C) order as TensorFlow
        h = self.fc(h)
        return torch.tanh(self.mu(h)), torch.tanh(self.log_sigma(h))


class AuthorsGenerator(nn.Module):
    """Latents ``(N, D)`` -> the generator's output ``(N, 3, S, S)`` (ELU: in (-1, inf))."""

    def __init__(self, latent_dim: int, base: int, fc_channels: int, channels: tuple[int, ...],
                 kernel: int = 3, eps: float = BN_EPSILON):
        super().__init__()
        self.base, self.c0 = base, fc_channels
        self.fc = nn.Linear(latent_dim, fc_channels * base * base)
        chans = (fc_channels, *channels, 3)
        self.deconvs = nn.Sequential(*[AuthorsDeconv(a, b, kernel, eps)
                                       for a, b in zip(chans[:-1], chans[1:], strict=True)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.fc(z)).view(-1, self.base, self.base, self.c0).permute(0, 3, 1, 2)
        return self.deconvs(h)


@contextlib.contextmanager
def full_float32_convolutions() -> Iterator[None]:
    """cuDNN convolutions in full float32 inside the block: torch lets them use TF32 (10-bit
    mantissa) on Ampere and later GPUs by default, which would move the outputs by ~1e-3."""
    b = torch.backends.cudnn
    with b.flags(enabled=b.enabled, benchmark=b.benchmark, deterministic=b.deterministic,
                 allow_tf32=False):
        yield


def authors_deprocess(images: np.ndarray) -> np.ndarray:
    """The authors' ``imdeprocess`` of ``VAEGAN_latent2image.py``, in its exact order.

    Image ``i`` is divided by the maximum of the whole batch *as it stands when image ``i`` is
    reached* (images before it already divided and clipped), then clipped to [0, 1]. For one
    image this is its own maximum.

    Parameters
    ----------
    images : ndarray of shape (N, S, S, 3)
        Generator outputs.

    Returns
    -------
    ndarray of shape (N, S, S, 3), float32 in [0, 1]
    """
    g = np.array(images, dtype=np.float32, copy=True)
    if not len(g):
        return g
    # maxima of the images not reached yet (suffix maxima) and of those already done
    img_max = g.reshape(len(g), -1).max(axis=1)
    suffix = np.maximum.accumulate(img_max[::-1])[::-1]
    done = -np.inf
    for i in range(len(g)):
        m = max(done, float(suffix[i]))
        g[i] = np.clip(g[i] / np.float32(m), 0.0, 1.0)
        done = max(done, float(g[i].max()))
    return g


def authors_preprocess(image: np.ndarray, size: int = 128, crop_factor: float = 0.8) -> np.ndarray:
    """The authors' ``preprocess128``: centre square, trim, resize (bilinear, no smoothing).

    The centred square of side ``s = min(H, W)`` is cut, ``int(s * (1 - crop_factor) / 2)``
    pixels are dropped on each side (truncated, as ``int`` does), and the rest is resized with
    scikit-image (order 1, no anti-aliasing, ``constant`` edges: the defaults of the
    scikit-image versions of the authors' time).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W), float in [0, 1]
    size : int
    crop_factor : float

    Returns
    -------
    ndarray of shape (size, size, 3), float32
    """
    from skimage.transform import resize

    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 3 or x.shape[-1] not in (3, 4):
        raise DataError(f"images: expected an image of shape (H, W, 3), got {x.shape}")
    x = x[..., :3]
    if not np.all(np.isfinite(x)) or (x.size and (x.min() < -1e-3 or x.max() > 1.0 + 1e-3)):
        raise DataError("images: values must be finite and lie in [0, 1]")
    s = min(x.shape[:2])
    r, c = (x.shape[0] - s) // 2, (x.shape[1] - s) // 2
    x = x[r: r + s, c: c + s]
    if crop_factor < 1.0:
        m = int(s * ((1 - crop_factor) / 2))
        if m > 0:
            x = x[m:-m, m:-m]
    out = resize(x, (size, size), order=1, mode="constant", anti_aliasing=False,
                 preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
