"""Temperature calibration of the ensemble's vote (``analyzer.calibration``)."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.calibration import (
    TEMPERATURE_RANGE,
    calibration_error,
    fit_temperature,
    with_temperature,
)
from analyzer.ensemble import build_ensemble


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from ``softmax(logits)``: those probabilities
    are calibrated by construction."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(6000, 4))
    p = softmax(logits)
    codes = np.array([rng.choice(4, p=row) for row in p])
    return logits, codes


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_the_fitted_temperature_undoes_a_wrong_one(
    truth: tuple[np.ndarray, np.ndarray], scale: float
) -> None:
    logits, codes = truth
    skewed = softmax(logits * scale)  # 0.5: under-confident, 2: over-confident
    temperature = fit_temperature(skewed, codes)
    assert temperature == pytest.approx(scale, rel=0.1)
    fixed = with_temperature(skewed, temperature)
    assert calibration_error(fixed, codes) < 0.02 < calibration_error(skewed, codes)
    assert calibration_error(softmax(logits), codes) < 0.02


def test_a_temperature_never_reorders_a_row(truth: tuple[np.ndarray, np.ndarray]) -> None:
    p = softmax(truth[0][:200])
    for t in (0.2, 0.7, 3.0):
        q = with_temperature(p, t)
        assert np.allclose(q.sum(axis=1), 1.0)
        assert (np.argsort(q, axis=1) == np.argsort(p, axis=1)).all()
    assert with_temperature(p, 1.0) is p
    assert (with_temperature(p, 0.5).max(axis=1) >= p.max(axis=1)).all()  # below 1 sharpens


def test_perfect_predictions_stop_at_the_bound() -> None:
    """Cross-validation without a single mistake must not make a model certain."""
    p = np.array([[0.6, 0.4], [0.3, 0.7]] * 50)
    codes = np.array([0, 1] * 50)
    assert fit_temperature(p, codes) == pytest.approx(TEMPERATURE_RANGE[0], abs=1e-3)


def test_the_ensemble_applies_its_temperature() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=60) > 0, "a", "b")
    ensemble = build_ensemble(("logreg", "extra_trees")).fit(X, y)
    mean = np.mean(list(ensemble.member_probabilities(X).values()), axis=0)
    assert np.allclose(ensemble.predict_proba(X), mean)  # fitted: temperature 1
    ensemble.calibrate(0.5)
    assert np.allclose(ensemble.predict_proba(X), with_temperature(mean, 0.5))
    explained = ensemble.explain(X[:1])[0]
    assert explained.confidence == pytest.approx(with_temperature(mean, 0.5)[0].max(), abs=1e-6)
    del ensemble.temperature_  # as in a file written before calibration existed
    assert np.allclose(ensemble.predict_proba(X), mean)


def test_training_calibrates_only_when_held_out_folds_say_it_helps(
    truth: tuple[np.ndarray, np.ndarray],
) -> None:
    from analyzer.training import calibrate

    logits, codes = truth
    index = np.arange(len(codes)) % 3
    folds = [(np.flatnonzero(index != k), np.flatnonzero(index == k)) for k in range(3)]
    under = softmax(logits * 0.5)
    member = under.copy()
    tables = {"original": {"ensemble": under, "a": member}, "narrowband": {"ensemble": under}}
    result = calibrate(tables, codes, folds)
    assert result["temperature"] == pytest.approx(0.5, rel=0.1)
    assert result["error"] < 0.02 < result["error_before"]  # scored on held-out folds
    for table in tables.values():  # every condition's vote is calibrated ...
        assert np.allclose(table["ensemble"], with_temperature(under, result["temperature"]))
    assert tables["original"]["a"] is member  # ... and no member's probabilities
    # Coin flips called at 0.5, right half the time: calibrated already, and
    # no temperature can do better on held-out folds, so the vote stays.
    coin = np.full((40, 2), 0.5)
    halves = np.arange(40) % 2
    tables = {"original": {"ensemble": coin}}
    folds = [(np.flatnonzero(halves != k), np.flatnonzero(halves == k)) for k in range(2)]
    result = calibrate(tables, np.arange(40) // 2 % 2, folds)
    assert result == {"temperature": 1.0, "error_before": 0.0, "error": 0.0}
    assert tables["original"]["ensemble"] is coin
