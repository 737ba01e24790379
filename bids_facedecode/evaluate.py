"""Identification metrics and their permutation tests (definitions: ``docs/statistics.md``).

* pairwise identification of each decoded item among the true items (chance 0.5);
* n-way (rank-1) identification among all N items (chance 1/N) and the mean rank
  (chance (N + 1) / 2);
* identification of imagined faces among the test faces, whose chance is the exact mean
  of its own null (only the imagined faces are permuted, so it is not 0.5 in general).

Correlations are Pearson correlations across features (latent dimensions or pixels) of
vectors from which a **reference** is subtracted first. The primary metrics use the
training mean of the latents (or, in image space, the reconstruction of that mean): a
latent space's mean is far from zero, and without it every decoded vector correlates
mostly with the mean face, so identification would measure how typical a face is.
``reference=None`` gives VanRullen & Reddy's (2019) uncentred correlation (each vector
centred over its own features only), kept as a secondary metric for comparison.

In identification a tie ``corr(ẑᵢ, zᵢ) == corr(ẑᵢ, zⱼ)`` counts one half, so chance is
exact; a centred vector of zero norm (a decoder that returns the reference itself) ties
with every candidate.

Gender decoding is in :mod:`bids_facedecode.gender`, reconstruction quality in
:mod:`bids_facedecode.quality`.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np

from .errors import DataError
from .quality import pixel_correlation, ssim  # noqa: F401 - re-exported (the public API)

#: Permutations drawn per block in Monte-Carlo tests (bounds memory: block × N indices).
PERM_BLOCK = 65536


class Identification(NamedTuple):
    """Identification scores: per item and mean."""

    per_item: np.ndarray
    mean: float


class PermutationTest(NamedTuple):
    """A permutation test of one or several statistics sharing the same permutations.

    ``p`` and ``chance`` have one entry per statistic; ``chance`` is the exact mean of the
    null distribution; ``exact`` says whether every permutation was enumerated
    (``p = #{null >= observed} / n!``) or ``n_perm`` were drawn
    (``p = (1 + #{null >= observed}) / (1 + n_perm)``).
    """

    observed: np.ndarray
    p: np.ndarray
    chance: np.ndarray
    n_perm: int
    exact: bool


def _flat(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        raise DataError(f"{name}: expected shape (N, features...), got {a.shape}")
    return a.reshape(a.shape[0], -1)


def _centre(a: np.ndarray, reference, name: str) -> np.ndarray:
    if reference is None:
        return a
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if ref.size != a.shape[1]:
        raise DataError(f"{name}: reference has {ref.size} features, the data {a.shape[1]}")
    return a - ref


def correlation_matrix(a, b, reference=None) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``, after subtracting
    ``reference`` from both.

    Parameters
    ----------
    a : array of shape (N, F) or (N, H, W[, C])
    b : array of shape (K, F) or (K, H, W[, C])
    reference : array of F values (or of one item's shape), optional
        Subtracted from every row of ``a`` and ``b`` before correlating. Without it, a
        constant row is an error (it has no correlation); with it, a row equal to the
        reference correlates 0 with everything (it carries no information).

    Returns
    -------
    ndarray of shape (N, K)
    """
    a = _centre(_flat(a, "correlation"), reference, "correlation")
    b = _centre(_flat(b, "correlation"), reference, "correlation")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"correlation: {a.shape[1]} features against {b.shape[1]}")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    if reference is None and (np.any(na == 0) or np.any(nb == 0)):
        raise DataError("correlation: a constant vector has no correlation (zero variance)")
    with np.errstate(invalid="ignore", divide="ignore"):
        C = (a @ b.T) / np.outer(na, nb)
    return np.where(np.isfinite(C), C, 0.0)


def identification_ranks(decoded, candidates, reference=None) -> np.ndarray:
    """Pairwise identification score of every candidate as the answer for every decoded item.

    ``R[i, k]`` is the fraction of candidates ``k' ≠ k`` with
    ``corr(ẑᵢ, c_k) > corr(ẑᵢ, c_k')`` (ties count one half).

    Parameters
    ----------
    decoded : array of shape (N, F)
    candidates : array of shape (K, F), K >= 2
    reference : array of shape (F,), optional (see :func:`correlation_matrix`)

    Returns
    -------
    ndarray of shape (N, K)
    """
    C = correlation_matrix(decoded, candidates, reference)
    K = C.shape[1]
    if K < 2:
        raise DataError("identification: needs at least 2 candidates")
    gt = (C[:, :, None] > C[:, None, :]).sum(axis=2)
    eq = (C[:, :, None] == C[:, None, :]).sum(axis=2) - 1  # minus the self comparison
    return (gt + 0.5 * eq) / (K - 1)


def nway_scores(decoded, candidates, reference=None) -> np.ndarray:
    """Rank-1 (n-way) identification score of every candidate for every decoded item.

    ``S[i, k]`` is 1 when candidate ``k`` correlates best with ``ẑᵢ``, ``1 / t`` when it
    shares the best correlation with ``t - 1`` others, else 0 (so each row sums to 1 and
    chance is exactly 1/K).

    Parameters
    ----------
    decoded : array of shape (N, F)
    candidates : array of shape (K, F), K >= 2
    reference : array of shape (F,), optional

    Returns
    -------
    ndarray of shape (N, K)
    """
    C = correlation_matrix(decoded, candidates, reference)
    if C.shape[1] < 2:
        raise DataError("identification: needs at least 2 candidates")
    best = C == C.max(axis=1, keepdims=True)
    return best / best.sum(axis=1, keepdims=True)


def ranks_from_pairwise(R: np.ndarray) -> np.ndarray:
    """Rank (1 = best, ties averaged) of each candidate, ``1 + (K − 1)(1 − R)``.

    Parameters
    ----------
    R : array of shape (N, K) from :func:`identification_ranks`

    Returns
    -------
    ndarray of shape (N, K)
    """
    return 1.0 + (R.shape[1] - 1) * (1.0 - R)


def _paired(decoded, true) -> tuple[np.ndarray, np.ndarray]:
    decoded, true = _flat(decoded, "decoded"), _flat(true, "true")
    if decoded.shape != true.shape:
        raise DataError(f"identification: decoded {decoded.shape} and true {true.shape} differ")
    return decoded, true


def pairwise_identification(decoded, true, reference=None) -> Identification:
    """Pairwise identification of each decoded item among the true items.

    For each ``i``: the fraction of ``j ≠ i`` with ``corr(ẑᵢ − r, zᵢ − r) > corr(ẑᵢ − r, zⱼ − r)``,
    ``r`` the reference (none: the paper's uncentred correlation).

    Parameters
    ----------
    decoded : array of shape (N, D) (latents) or (N, H, W, 3) (images, flattened)
    true : array of the same shape
    reference : array of one item's shape, optional

    Returns
    -------
    Identification
        ``per_item`` of shape (N,), ``mean`` (chance 0.5).
    """
    decoded, true = _paired(decoded, true)
    per_item = np.diagonal(identification_ranks(decoded, true, reference)).copy()
    return Identification(per_item, float(per_item.mean()))


def nway_identification(decoded, true, reference=None) -> Identification:
    """Rank-1 identification of each decoded item among all N true items (chance 1/N).

    Parameters
    ----------
    decoded, true : arrays of shape (N, F) (or images, flattened)
    reference : array of one item's shape, optional

    Returns
    -------
    Identification
        ``per_item`` of shape (N,) (1, 0 or 1/t for a t-way tie), ``mean``.
    """
    decoded, true = _paired(decoded, true)
    per_item = np.diagonal(nway_scores(decoded, true, reference)).copy()
    return Identification(per_item, float(per_item.mean()))


def as_generator(rng) -> np.random.Generator:
    """``rng`` itself when it is a numpy Generator, else a new one seeded with it."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_n_perm(n_perm: int) -> None:
    """Raise :class:`DataError` unless at least one permutation is asked for."""
    if int(n_perm) < 1:
        raise DataError(f"n_perm: must be >= 1, got {n_perm}")


def permutation_test(scores, target, n_perm: int = 10000, rng=None) -> PermutationTest:
    """Test statistics ``mean_i S[i, target[i]]`` against reassignments of ``target``.

    The null permutes the entries of ``target`` among the items (which decoded item goes
    with which answer), the same permutations for every score matrix. When ``n!`` does
    not exceed ``n_perm`` every permutation is enumerated (an exact test); otherwise
    ``n_perm`` are drawn, vectorised in blocks. The exact null mean is
    ``mean over (i, i') of S[i, target[i']]`` (each item meets each answer with
    probability 1/n), whatever the draws.

    Parameters
    ----------
    scores : array of shape (S, N, K) or (N, K)
        Score matrices, larger = better (negate a statistic where smaller is better).
    target : int array of shape (N,), values in 0..K-1
    n_perm : int, >= 1
    rng : numpy.random.Generator or int seed

    Returns
    -------
    PermutationTest
    """
    check_n_perm(n_perm)
    S = np.asarray(scores, dtype=np.float64)
    S = S[None] if S.ndim == 2 else S
    target = np.asarray(target, dtype=np.int64)
    n = target.size
    rows = np.arange(n)
    observed = S[:, rows, target].mean(axis=1)
    chance = S[:, :, target].mean(axis=(1, 2))
    tol = 1e-12  # an exact tie with the observed value counts as "as extreme"
    count = np.zeros(S.shape[0], np.int64)

    def add(perms: np.ndarray) -> None:  # perms: (B, n) permutations of the items
        # item by item, one take on that item's small score row: much faster than one
        # fancy-indexed gather of (S, B, n) scores
        answers = target[perms.T]  # (n, B): the answer each item gets under each permutation
        null = np.zeros((S.shape[0], perms.shape[0]))
        for i in range(n):
            null += np.take(S[:, i, :], answers[i], axis=1)
        count[:] += (null / n >= observed[:, None] - tol).sum(axis=1)

    exact = n <= 12 and math.factorial(n) <= n_perm
    if exact:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
        for start in range(0, len(perms), PERM_BLOCK):
            add(perms[start:start + PERM_BLOCK])
        return PermutationTest(observed, count / len(perms), chance, len(perms), True)
    rng = as_generator(rng)
    base = np.broadcast_to(np.arange(n), (min(n_perm, PERM_BLOCK), n))
    for start in range(0, n_perm, PERM_BLOCK):
        add(rng.permuted(base[: min(PERM_BLOCK, n_perm - start)], axis=1))
    return PermutationTest(observed, (1 + count) / (1 + n_perm), chance, n_perm, False)


def identification_permutation_p(decoded, true, n_perm: int = 10000, rng=None,
                                 reference=None) -> float:
    """Permutation p-value of the mean pairwise identification.

    The null shuffles the assignment of decoded items to true items (see
    :func:`permutation_test`).

    Parameters
    ----------
    decoded, true : arrays of shape (N, F) (or images, flattened)
    n_perm : int
    rng : numpy.random.Generator or int seed
    reference : array of one item's shape, optional

    Returns
    -------
    float
    """
    decoded, true = _paired(decoded, true)
    R = identification_ranks(decoded, true, reference)
    return float(permutation_test(R, np.arange(R.shape[0]), n_perm, rng).p[0])


def _check_index(imagined_index, M: int, N: int) -> np.ndarray:
    idx = np.asarray(imagined_index)
    if idx.shape != (M,) or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(
            f"imagined_index: expected {M} integer indices, got {idx.shape} {idx.dtype}"
        )
    if np.any(idx < 0) or np.any(idx >= N):
        raise DataError(f"imagined_index: indices must lie in 0..{N - 1}")
    return idx.astype(np.int64)


def imagery_ranks(decoded_imagery, imagined_index, test_latents, reference=None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise scores of every test face for every imagery trial, and the checked index.

    Returns
    -------
    R : ndarray of shape (M, N)
    index : int ndarray of shape (M,)
    """
    decoded = _flat(decoded_imagery, "decoded_imagery")
    test = _flat(test_latents, "test_latents")
    idx = _check_index(imagined_index, decoded.shape[0], test.shape[0])
    return identification_ranks(decoded, test, reference), idx


def imagery_identification(decoded_imagery, imagined_index, test_latents,
                           reference=None) -> Identification:
    """Identification of each imagined face among the test faces.

    For imagery trial ``m`` imagining test face ``t = imagined_index[m]``: the fraction of
    test faces ``j ≠ t`` with ``corr(ẑ_m, z_t) > corr(ẑ_m, z_j)`` (after subtracting the
    reference). Its chance is :func:`imagery_chance`, not 0.5.

    Parameters
    ----------
    decoded_imagery : array of shape (M, D)
    imagined_index : int array of shape (M,)
        Row of ``test_latents`` that each trial imagined.
    test_latents : array of shape (N, D), N >= 2
    reference : array of shape (D,), optional

    Returns
    -------
    Identification
        ``per_item`` of shape (M,), ``mean``.
    """
    R, idx = imagery_ranks(decoded_imagery, imagined_index, test_latents, reference)
    per_item = R[np.arange(idx.size), idx]
    return Identification(per_item, float(per_item.mean()))


def imagery_chance(decoded_imagery, imagined_index, test_latents, reference=None) -> float:
    """Exact mean of imagery identification under its null (the imagined labels permuted
    among the trials): ``mean over (m, m') of R[m, imagined_index[m']]``.

    It is 0.5 only when every test face is imagined equally often, or the decoded trials
    rank the faces alike on average.
    """
    R, idx = imagery_ranks(decoded_imagery, imagined_index, test_latents, reference)
    return float(R[:, idx].mean())


def imagery_permutation_p(
    decoded_imagery, imagined_index, test_latents, n_perm: int = 10000, rng=None,
    reference=None,
) -> float:
    """Permutation p-value of imagery identification (shuffles which trial imagined what).

    Parameters
    ----------
    decoded_imagery : array of shape (M, D)
    imagined_index : int array of shape (M,)
    test_latents : array of shape (N, D)
    n_perm : int
    rng : numpy.random.Generator or int seed
    reference : array of shape (D,), optional

    Returns
    -------
    float
    """
    R, idx = imagery_ranks(decoded_imagery, imagined_index, test_latents, reference)
    return float(permutation_test(R, idx, n_perm, rng).p[0])
