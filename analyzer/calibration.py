"""Confidence calibration: one temperature for the ensemble's vote.

Averaging members makes the vote under-confident (extra trees spread their
probability; the mean of two sure members is less sure than either), so a
clip called with "0.8" was right far more often than 80 % of the time.
Temperature scaling (Guo et al., 2017) fixes that with one number fitted on
the out-of-fold predictions cross-validation already makes: it sharpens or
softens every probability vector without reordering it, so labels, votes
and accuracy stay exactly as they were and only the confidences change.
"""

from __future__ import annotations

import numpy as np

#: Temperatures searched. Bounded, so that a small data set that happens to
#: be predicted perfectly in cross-validation is not made certain of everything.
TEMPERATURE_RANGE = (0.2, 5.0)
#: Equal-width confidence bins of ``calibration_error``.
CALIBRATION_BINS = 15
_FLOOR = 1e-12


def with_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``proba ** (1 / temperature)``, renormalised per row: below 1 sharpens."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, _FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


def log_loss(proba: np.ndarray, codes: np.ndarray) -> float:
    """Mean negative log probability of the true class (``codes`` index columns)."""
    picked = proba[np.arange(len(codes)), codes]
    return float(-np.mean(np.log(np.clip(picked, _FLOOR, 1.0))))


def fit_temperature(proba: np.ndarray, codes: np.ndarray) -> float:
    """The temperature in ``TEMPERATURE_RANGE`` that minimises the log loss
    of out-of-fold ``proba`` against the true class indices ``codes``."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        lambda t: log_loss(with_temperature(proba, t), codes),
        bounds=TEMPERATURE_RANGE,
        method="bounded",
    )
    return round(float(found.x), 4)


def calibration_error(proba: np.ndarray, codes: np.ndarray) -> float:
    """Expected calibration error: how far confidence is from the share of
    right answers, averaged over ``CALIBRATION_BINS`` confidence bins weighted
    by their clips. 0 is perfect; 0.07 means confidences are 7 points off."""
    confidence = proba.max(axis=1)
    right = proba.argmax(axis=1) == codes
    which = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    error = 0.0
    for b in np.unique(which):
        in_bin = which == b
        error += in_bin.mean() * abs(confidence[in_bin].mean() - right[in_bin].mean())
    return round(float(error), 4)
