"""Controls that can fail: decoders that know nothing sit at chance with valid p-values, and
the same harness reports a failure for a decoder that leaks the truth.

Each seed simulates a linear brain (patterns = [latents − training mean, 1] · W + noise), fits
the forward map by least squares from training patterns, decodes test and imagery patterns
with the app's inverse (``decode.decode_latents``) and evaluates them with the app's metric
records (``workflow.evaluation.evaluate_decoded``). Over 50 seeds the harness checks that
each metric's mean sits at its chance level and that its p-values are not too small:
uniform for pairwise identification (two-sided Kolmogorov–Smirnov), not stochastically
smaller than uniform for the discrete tests (n-way identification's, imagery's and the
exact gender test's p-values have atoms and are conservative: one-sided KS), and at most
15 % below 0.05.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bids_facedecode import decode, gender
from bids_facedecode.workflow.evaluation import EvalContext, evaluate_decoded

SEEDS = range(50)
D, V, N_TRAIN, N_TEST, N_PERM = 12, 200, 240, 20, 200
IMAGINED = np.array([0, 0, 0, 1, 1, 2, 3, 4])  # some faces imagined more often than others
CHECKED = ("pairwise_latent", "nway_latent", "pairwise_latent_uncentred", "imagery_pairwise",
           "gender_balanced_accuracy", "gender_accuracy")
TWO_SIDED = ("pairwise_latent", "pairwise_latent_uncentred")


def _latents(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Latents far from zero (offset 3 in every dimension), gender along the first axis."""
    male = rng.random(n) < 0.6  # unbalanced, as training sets are
    z = 3.0 + rng.standard_normal((n, D))
    z[:, 0] += np.where(male, 1.0, -1.0)
    return z, male


def simulate_and_decode(seed: int, mode: str) -> dict:
    """One simulated participant decoded by the decoder ``mode``; returns the metric records.

    ``mode``: ``"permuted"`` (training latents permuted among the training stimuli before the
    fit), ``"noise"`` (BOLD of pure noise), ``"leak"`` (a broken decoder that returns the test
    images' true latents plus noise), ``"signal"`` (the real fit, for reference).
    """
    rng = np.random.default_rng(seed)
    z_train, male_train = _latents(rng, N_TRAIN)
    z_test, _ = _latents(rng, N_TEST)
    male_test = np.arange(N_TEST) % 2 == 0
    z_test[:, 0] = 3.0 + np.where(male_test, 1.0, -1.0) + 0.3 * rng.standard_normal(N_TEST)
    z_mean = z_train.mean(axis=0)
    W = rng.standard_normal((D + 1, V))

    def bold(z, gain=1.0):
        x = np.column_stack([z - z_mean, np.ones(len(z))])
        signal = 0.0 if mode == "noise" else gain * x @ W
        return signal + 4.0 * rng.standard_normal((len(z), V))

    b_train, b_test, b_img = bold(z_train), bold(z_test), bold(z_test[IMAGINED], 0.5)
    fit_latents = z_train[rng.permutation(N_TRAIN)] if mode == "permuted" else z_train
    X = np.column_stack([fit_latents - fit_latents.mean(axis=0), np.ones(N_TRAIN)])
    W_hat = np.linalg.lstsq(X, b_train, rcond=None)[0]
    if mode == "leak":
        test_dec = z_test + 0.5 * rng.standard_normal(z_test.shape)
        img_dec = z_test[IMAGINED] + 0.5 * rng.standard_normal((len(IMAGINED), D))
    else:
        test_dec = decode.decode_latents(b_test, W_hat, z_mean, face_index=D)
        img_dec = decode.decode_latents(b_img, W_hat, z_mean, face_index=D)
    axis, _ = gender.gender_axis(z_train, male_train)
    ctx = EvalContext(None, z_test, None, np.where(male_test, "M", "F").astype(object), axis,
                      IMAGINED, list(range(len(IMAGINED))), N_PERM, rng)
    return evaluate_decoded(ctx, test_dec, img_dec, z_mean, {})[0]


def null_control(mode: str) -> list[str]:
    """Run ``mode`` over the seeds; return what went wrong (empty when the control passes)."""
    runs = [simulate_and_decode(s, mode) for s in SEEDS]
    failures = []
    for key in CHECKED:
        above = np.array([r[key]["value"] - r[key]["chance"] for r in runs])
        p = np.array([r[key]["p_value"] for r in runs])
        sem = above.std(ddof=1) / np.sqrt(above.size)
        if abs(above.mean()) > 3 * sem + 1e-9:
            failures.append(f"{key}: mean above chance {above.mean():.3f} (s.e.m. {sem:.3f})")
        ks = stats.kstest(p, "uniform", alternative="two-sided" if key in TWO_SIDED else "greater")
        if ks.pvalue < 0.01:
            failures.append(f"{key}: p-values not uniform (KS p = {ks.pvalue:.2g})")
        if np.mean(p <= 0.05) > 0.15:
            failures.append(f"{key}: {np.mean(p <= 0.05):.0%} of p <= 0.05")
    return failures


@pytest.mark.parametrize("mode", ["permuted", "noise"])
def test_decoders_that_know_nothing_sit_at_chance(mode):
    assert null_control(mode) == []


def test_the_control_fails_for_a_decoder_that_leaks_the_truth():
    failures = null_control("leak")
    for key in ("pairwise_latent", "nway_latent", "imagery_pairwise", "gender_balanced_accuracy"):
        assert any(f.startswith(f"{key}:") for f in failures), (key, failures)


def test_the_simulated_brain_decodes_when_the_fit_sees_the_latents():
    m = simulate_and_decode(0, "signal")
    assert m["pairwise_latent"]["value"] > 0.9 and m["pairwise_latent"]["p_value"] < 0.01
    assert m["gender_balanced_accuracy"]["value"] > 0.8
