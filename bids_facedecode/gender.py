"""Gender decoding along the latent gender axis (definitions: ``docs/statistics.md``).

The axis is ``mean(z | male) − mean(z | female)`` over labelled training latents (as in
VanRullen & Reddy, 2019). A decoded latent is called male when its projection on the axis,
taken from the **training mean** ``z̄``, is positive: ``(ẑ − z̄) · axis > 0``. A decoder that
knows nothing returns ``z̄`` (plus noise symmetric about it), so the rule has no side; the
midpoint of the class means would call every such face the majority training class. A
projection of exactly 0 is a tie and counts one half.

The test permutes the test labels among the items with the predictions fixed: the number
of males called male is then hypergeometric, which is Fisher's exact test (one-sided) of the
2 × 2 table; accuracy and balanced accuracy are both increasing functions of that count, so
they share its p-value. It is valid for unbalanced test sets (a binomial test against 0.5 is
not). Balanced accuracy has chance 0.5 under that null whatever the balance; accuracy's
exact null mean is reported as its chance.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from .errors import DataError


class GenderResult(NamedTuple):
    """Gender decoding of N items.

    ``accuracy`` and ``balanced_accuracy`` (mean of the per-class accuracies), their exact
    null means ``chance`` and ``balanced_chance`` (0.5), the one-sided exact p shared by
    both, ``n`` items of which ``n_male`` male, and ``correct`` per item (1, 0, 0.5 for a tie).
    """

    accuracy: float
    balanced_accuracy: float
    chance: float
    balanced_chance: float
    p: float
    n: int
    n_male: int
    correct: np.ndarray


def _flat(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise DataError(f"{name}: expected shape (N, D), got {a.shape}")
    return a


def _labels(is_male, n: int) -> np.ndarray:
    m = np.asarray(is_male, dtype=bool)
    if m.shape != (n,):
        raise DataError(f"is_male: expected {n} labels, got shape {m.shape}")
    return m


def gender_axis(latents, is_male) -> tuple[np.ndarray, np.ndarray]:
    """Latent gender axis ``mean(z | male) − mean(z | female)`` and the classes' midpoint.

    Parameters
    ----------
    latents : array of shape (N, D)
    is_male : bool array of shape (N,)

    Returns
    -------
    axis : ndarray of shape (D,)
    midpoint : ndarray of shape (D,)
        ``(mean(z | male) + mean(z | female)) / 2`` (saved with a decoder; the decision
        rule uses the training mean instead, see the module docstring).
    """
    z = _flat(latents, "latents")
    m = _labels(is_male, z.shape[0])
    if m.all() or not m.any():
        raise DataError("gender axis: needs both male and female labelled images")
    mean_m, mean_f = z[m].mean(axis=0), z[~m].mean(axis=0)
    return mean_m - mean_f, (mean_m + mean_f) / 2


def gender_projection(decoded, axis, reference) -> np.ndarray:
    """``(ẑᵢ − reference) · axis`` for every item: > 0 male, < 0 female, 0 a tie.

    Parameters
    ----------
    decoded : array of shape (N, D)
    axis, reference : arrays of shape (D,)

    Returns
    -------
    ndarray of shape (N,)
    """
    z = _flat(decoded, "decoded")
    return (z - np.asarray(reference, np.float64)) @ np.asarray(axis, np.float64)


def label_permutation_p(called_male, is_male) -> float:
    """One-sided exact p of the agreement between calls and labels under label permutation.

    Items with a tie (``called_male`` NaN) are set aside: conditional on the labels they
    hold, the others' labels are still exchangeable. The count of males called male among
    the rest is hypergeometric; ``p = P(X >= observed)`` (Fisher's exact test, greater).

    Parameters
    ----------
    called_male : float array of shape (N,) — 1 male, 0 female, NaN tie
    is_male : bool array of shape (N,)

    Returns
    -------
    float
    """
    c = np.asarray(called_male, np.float64)
    m = _labels(is_male, c.size)
    keep = np.isfinite(c)
    c, m = c[keep] > 0.5, m[keep]
    n, n_male, n_called = c.size, int(m.sum()), int(c.sum())
    if n == 0:
        return 1.0
    x = int(np.sum(c & m))
    return float(stats.hypergeom.sf(x - 1, n, n_male, n_called))


def gender_accuracy(decoded, is_male, axis, reference) -> GenderResult:
    """Gender decoding with the rule ``(ẑ − reference) · axis > 0`` and its exact test.

    Parameters
    ----------
    decoded : array of shape (N, D)
        Decoded latents (or, for the ceiling, the test images' true latents).
    is_male : bool array of shape (N,), both classes present
    axis : array of shape (D,), from :func:`gender_axis`
    reference : array of shape (D,)
        The training mean of the latents.

    Returns
    -------
    GenderResult
    """
    proj = gender_projection(decoded, axis, reference)
    m = _labels(is_male, proj.size)
    if m.all() or not m.any():
        raise DataError("gender accuracy: the test items need both male and female labels")
    called = np.where(proj > 0, 1.0, np.where(proj < 0, 0.0, np.nan))
    correct = np.where(np.isnan(called), 0.5, (called == 1.0) == m).astype(np.float64)
    n, n_male = m.size, int(m.sum())
    ties = int(np.isnan(called).sum())
    n_called_m, n_called_f = int(np.sum(called == 1.0)), int(np.sum(called == 0.0))
    chance = (0.5 * ties + (n_called_m * n_male + n_called_f * (n - n_male)) / n) / n
    balanced = 0.5 * (correct[m].mean() + correct[~m].mean())
    return GenderResult(float(correct.mean()), float(balanced), float(chance), 0.5,
                        label_permutation_p(called, m), int(n), n_male, correct)
