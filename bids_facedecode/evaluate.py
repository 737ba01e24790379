"""Decoding metrics and their statistics (DESIGN.md §5).

* pairwise identification among the test images (latent or image space; chance 0.5)
  with a permutation p-value;
* gender decoding along the latent gender axis, with a binomial p-value;
* identification of imagined faces among the test faces, with a permutation p-value;
* reconstruction quality: pixel correlation and SSIM per image.

Correlations are Pearson correlations across features (latent dimensions or pixels).
In identification, a tie ``corr(ẑᵢ, zᵢ) == corr(ẑᵢ, zⱼ)`` counts one half, so chance
stays exactly 0.5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from .errors import DataError


class Identification(NamedTuple):
    """Identification accuracy: per item and mean (chance 0.5)."""

    per_item: np.ndarray
    mean: float


class GenderResult(NamedTuple):
    """Gender decoding: accuracy, number of items, one-sided binomial p (chance 0.5)."""

    accuracy: float
    n: int
    p: float


def _flat(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        raise DataError(f"{name}: expected shape (N, features...), got {a.shape}")
    return a.reshape(a.shape[0], -1)


def correlation_matrix(a, b) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``.

    Parameters
    ----------
    a : array of shape (N, F) or (N, H, W[, C])
    b : array of shape (K, F) or (K, H, W[, C])

    Returns
    -------
    ndarray of shape (N, K)
    """
    a = _flat(a, "correlation")
    b = _flat(b, "correlation")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"correlation: {a.shape[1]} features against {b.shape[1]}")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    if np.any(na == 0) or np.any(nb == 0):
        raise DataError("correlation: a constant vector has no correlation (zero variance)")
    return (a @ b.T) / np.outer(na, nb)


def identification_ranks(decoded, candidates) -> np.ndarray:
    """Identification score of every candidate as the answer for every decoded item.

    ``R[i, k]`` is the fraction of candidates ``k' ≠ k`` with
    ``corr(ẑᵢ, c_k) > corr(ẑᵢ, c_k')`` (ties count one half).

    Parameters
    ----------
    decoded : array of shape (N, F)
    candidates : array of shape (K, F), K >= 2

    Returns
    -------
    ndarray of shape (N, K)
    """
    C = correlation_matrix(decoded, candidates)
    K = C.shape[1]
    if K < 2:
        raise DataError("identification: needs at least 2 candidates")
    gt = (C[:, :, None] > C[:, None, :]).sum(axis=2)
    eq = (C[:, :, None] == C[:, None, :]).sum(axis=2) - 1  # minus the self comparison
    return (gt + 0.5 * eq) / (K - 1)


def pairwise_identification(decoded, true) -> Identification:
    """Pairwise identification of each decoded item among the true items.

    For each ``i``: the fraction of ``j ≠ i`` with ``corr(ẑᵢ, zᵢ) > corr(ẑᵢ, zⱼ)``.

    Parameters
    ----------
    decoded : array of shape (N, D) (latents) or (N, H, W, 3) (images, flattened)
    true : array of the same shape

    Returns
    -------
    Identification
        ``per_item`` of shape (N,), ``mean`` (chance 0.5).
    """
    decoded, true = _flat(decoded, "decoded"), _flat(true, "true")
    if decoded.shape != true.shape:
        raise DataError(f"identification: decoded {decoded.shape} and true {true.shape} differ")
    R = identification_ranks(decoded, true)
    per_item = np.diagonal(R).copy()
    return Identification(per_item, float(per_item.mean()))


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _permutation_p(R: np.ndarray, target: np.ndarray, n_perm: int, rng) -> float:
    """p of mean_i R[i, target[i]] against random reassignments of ``target``."""
    if n_perm < 1:
        raise DataError(f"n_perm: must be >= 1, got {n_perm}")
    rng = _rng(rng)
    rows = np.arange(R.shape[0])
    observed = R[rows, target].mean()
    perms = np.argsort(rng.random((n_perm, target.size)), axis=1)
    null = R[rows[None, :], target[perms]].mean(axis=1)
    # a tolerance so that an exact tie with the observed value counts as "as extreme"
    count = int(np.sum(null >= observed - 1e-12))
    return (1 + count) / (1 + n_perm)


def identification_permutation_p(decoded, true, n_perm: int = 10000, rng=None) -> float:
    """Permutation p-value of the mean pairwise identification.

    The null shuffles the assignment of decoded items to true items;
    ``p = (1 + #{null >= observed}) / (1 + n_perm)``.

    Parameters
    ----------
    decoded, true : arrays of shape (N, F) (or images, flattened)
    n_perm : int
    rng : numpy.random.Generator or int seed

    Returns
    -------
    float
    """
    decoded, true = _flat(decoded, "decoded"), _flat(true, "true")
    if decoded.shape != true.shape:
        raise DataError(f"identification: decoded {decoded.shape} and true {true.shape} differ")
    R = identification_ranks(decoded, true)
    return _permutation_p(R, np.arange(R.shape[0]), n_perm, rng)


def _check_index(imagined_index, M: int, N: int) -> np.ndarray:
    idx = np.asarray(imagined_index)
    if idx.shape != (M,) or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(
            f"imagined_index: expected {M} integer indices, got {idx.shape} {idx.dtype}"
        )
    if np.any(idx < 0) or np.any(idx >= N):
        raise DataError(f"imagined_index: indices must lie in 0..{N - 1}")
    return idx.astype(np.int64)


def imagery_identification(decoded_imagery, imagined_index, test_latents) -> Identification:
    """Identification of each imagined face among the test faces.

    For imagery trial ``m`` imagining test face ``t = imagined_index[m]``: the fraction of
    test faces ``j ≠ t`` with ``corr(ẑ_m, z_t) > corr(ẑ_m, z_j)``.

    Parameters
    ----------
    decoded_imagery : array of shape (M, D)
    imagined_index : int array of shape (M,)
        Row of ``test_latents`` that each trial imagined.
    test_latents : array of shape (N, D), N >= 2

    Returns
    -------
    Identification
        ``per_item`` of shape (M,), ``mean`` (chance 0.5).
    """
    decoded = _flat(decoded_imagery, "decoded_imagery")
    test = _flat(test_latents, "test_latents")
    idx = _check_index(imagined_index, decoded.shape[0], test.shape[0])
    R = identification_ranks(decoded, test)
    per_item = R[np.arange(idx.size), idx]
    return Identification(per_item, float(per_item.mean()))


def imagery_permutation_p(
    decoded_imagery, imagined_index, test_latents, n_perm: int = 10000, rng=None
) -> float:
    """Permutation p-value of imagery identification (shuffles which trial imagined what).

    Parameters
    ----------
    decoded_imagery : array of shape (M, D)
    imagined_index : int array of shape (M,)
    test_latents : array of shape (N, D)
    n_perm : int
    rng : numpy.random.Generator or int seed

    Returns
    -------
    float
    """
    decoded = _flat(decoded_imagery, "decoded_imagery")
    test = _flat(test_latents, "test_latents")
    idx = _check_index(imagined_index, decoded.shape[0], test.shape[0])
    return _permutation_p(identification_ranks(decoded, test), idx, n_perm, rng)


def gender_axis(latents, is_male) -> tuple[np.ndarray, np.ndarray]:
    """Latent gender axis ``mean(z | male) − mean(z | female)`` and the midpoint.

    Parameters
    ----------
    latents : array of shape (N, D)
    is_male : bool array of shape (N,)

    Returns
    -------
    axis : ndarray of shape (D,)
    midpoint : ndarray of shape (D,)
        ``(mean(z | male) + mean(z | female)) / 2``.
    """
    z = _flat(latents, "latents")
    m = np.asarray(is_male, dtype=bool)
    if m.shape != (z.shape[0],):
        raise DataError(f"is_male: expected {z.shape[0]} labels, got shape {m.shape}")
    if m.all() or not m.any():
        raise DataError("gender axis: needs both male and female labelled images")
    mean_m, mean_f = z[m].mean(axis=0), z[~m].mean(axis=0)
    return mean_m - mean_f, (mean_m + mean_f) / 2


def gender_accuracy(decoded, is_male, axis, midpoint) -> GenderResult:
    """Accuracy of the sign of the decoded projection on the gender axis.

    Item ``i`` is called male when ``(ẑᵢ − midpoint) · axis > 0``.

    Parameters
    ----------
    decoded : array of shape (N, D)
    is_male : bool array of shape (N,)
    axis, midpoint : arrays of shape (D,)

    Returns
    -------
    GenderResult
        accuracy, n, one-sided binomial p (``scipy.stats.binomtest``, greater than 0.5).
    """
    z = _flat(decoded, "decoded")
    m = np.asarray(is_male, dtype=bool)
    if m.shape != (z.shape[0],):
        raise DataError(f"is_male: expected {z.shape[0]} labels, got shape {m.shape}")
    pred = (z - np.asarray(midpoint, dtype=np.float64)) @ np.asarray(axis, dtype=np.float64) > 0
    k, n = int(np.sum(pred == m)), int(m.size)
    if n == 0:
        raise DataError("gender accuracy: no items")
    p = float(stats.binomtest(k, n, 0.5, alternative="greater").pvalue)
    return GenderResult(k / n, n, p)


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


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to plain Python for ``json.dump``.

    NaN and infinities become ``None`` (JSON has no NaN).
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


@dataclass
class Metrics:
    """The metrics of one subject and latent space; ``to_dict()`` is JSON-serialisable."""

    space: str
    n_test: int
    pairwise_latent: float
    pairwise_latent_p: float | None = None
    pairwise_latent_per_item: list[float] = field(default_factory=list)
    pairwise_image: float | None = None
    pairwise_image_p: float | None = None
    gender_accuracy: float | None = None
    gender_n: int | None = None
    gender_p: float | None = None
    imagery_accuracy: float | None = None
    imagery_n: int | None = None
    imagery_p: float | None = None
    pixel_correlation: float | None = None
    ssim: float | None = None
    n_perm: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (numpy converted, NaN as None)."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def evaluate_decoding(
    space: str,
    decoded_test,
    true_test,
    *,
    is_male_test=None,
    gender=None,
    decoded_imagery=None,
    imagined_index=None,
    reconstructed_images=None,
    true_images=None,
    n_perm: int = 10000,
    rng=None,
) -> Metrics:
    """Compute every metric that the given inputs allow.

    Parameters
    ----------
    space : str
        Latent space name (``"pca"``, ``"vaegan"``).
    decoded_test, true_test : arrays of shape (N, D)
        Decoded and true latents of the test images.
    is_male_test : bool array of shape (N,), optional
    gender : (axis, midpoint) from :func:`gender_axis` on labelled training latents, optional
    decoded_imagery : array of shape (M, D), optional
    imagined_index : int array of shape (M,), optional
    reconstructed_images, true_images : arrays of shape (N, H, W, 3), optional
    n_perm : int
    rng : numpy.random.Generator or int seed

    Returns
    -------
    Metrics
    """
    rng = _rng(rng)
    ident = pairwise_identification(decoded_test, true_test)
    out = Metrics(
        space=space,
        n_test=int(ident.per_item.size),
        pairwise_latent=ident.mean,
        pairwise_latent_p=identification_permutation_p(decoded_test, true_test, n_perm, rng),
        pairwise_latent_per_item=[float(x) for x in ident.per_item],
        n_perm=n_perm,
    )
    if is_male_test is not None and gender is not None:
        g = gender_accuracy(decoded_test, is_male_test, *gender)
        out.gender_accuracy, out.gender_n, out.gender_p = g.accuracy, g.n, g.p
    if decoded_imagery is not None and imagined_index is not None and len(imagined_index):
        im = imagery_identification(decoded_imagery, imagined_index, true_test)
        out.imagery_accuracy, out.imagery_n = im.mean, int(im.per_item.size)
        out.imagery_p = imagery_permutation_p(
            decoded_imagery, imagined_index, true_test, n_perm, rng
        )
    if reconstructed_images is not None and true_images is not None:
        out.pairwise_image = pairwise_identification(reconstructed_images, true_images).mean
        out.pairwise_image_p = identification_permutation_p(
            reconstructed_images, true_images, n_perm, rng
        )
        out.pixel_correlation = float(
            np.nanmean(pixel_correlation(reconstructed_images, true_images))
        )
        out.ssim = float(np.mean(ssim(reconstructed_images, true_images)))
    return out
