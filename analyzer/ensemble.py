"""The ensemble: different scikit-learn members combined by soft voting.

``VotingEnsemble`` follows scikit-learn's estimator contract (``__init__``
stores parameters, ``fit`` returns ``self``, fitted attributes end in ``_``)
and adds what harken reports beside the label: every member's vote and how
many members agree. The vote is calibrated by one temperature
(``analyzer.calibration``) fitted on out-of-fold predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from analyzer.boosting import PackedGradientBoosting
from analyzer.calibration import with_temperature
from analyzer.results import Prediction

#: Members a new ensemble can be built from, by name.
MEMBER_NAMES = ("logreg", "svm", "extra_trees", "gboost")
DEFAULT_MEMBERS = MEMBER_NAMES
#: Folds the svm member's Platt scaling is fitted on: fewer (two at least)
#: when a class has fewer training clips (``fewest_clips``).
SVM_CALIBRATION_FOLDS = 3
#: Training rows a fitted ensemble keeps with its members' answers to them,
#: so a load can check that it still answers the same (``answer_drift``).
PROBE_ROWS = 16


def make_member(name: str, *, random_state: int = 0) -> Any:
    """A fresh, unfitted member estimator by name.

    Every member weighs classes by inverse frequency, so a rare class is not
    drowned by a common one.
    """
    if name == "logreg":
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced"),
        )
    if name == "svm":
        # SVC's own probability=True is deprecated; Platt scaling on held-out folds.
        svm = make_pipeline(StandardScaler(), SVC(C=4.0, gamma="scale", class_weight="balanced"))
        return CalibratedClassifierCV(
            svm, method="sigmoid", cv=SVM_CALIBRATION_FOLDS, ensemble=False
        )
    if name == "extra_trees":
        # 15 % of the features per split, not the square root: with hundreds of
        # features, a random split among ~21 is mostly noise. A leaf holds at
        # least 0.07 % of the rows: one on small sets, where bigger leaves cost
        # accuracy; six on the default corpus (7,266 rows with its copies),
        # which keeps the shipped file small. With 120 trees (was 80, sqrt,
        # leaves of 5): leave-one-source-out 0.890 -> 0.926 alone, the
        # ESC-like set 0.648 -> 0.720.
        return ExtraTreesClassifier(
            n_estimators=120,
            min_samples_leaf=0.0007,
            max_features=0.15,
            class_weight="balanced",
            n_jobs=1,
            random_state=random_state,
        )
    if name == "gboost":
        # scikit-learn's booster, saved as a few arrays so it loads fast.
        return PackedGradientBoosting(
            max_iter=300,
            learning_rate=0.08,
            max_leaf_nodes=24,
            l2_regularization=1.0,
            class_weight="balanced",
            random_state=random_state,
        )
    raise ValueError(f"unknown ensemble member {name!r}; choose from {', '.join(MEMBER_NAMES)}")


def fewest_clips(members: tuple[str, ...]) -> int:
    """The fewest training clips of a class that ``members`` can be fitted on:
    the svm member's calibration holds one out, so two."""
    return 2 if "svm" in members else 1


def _sized(member: Any, fewest: int) -> Any:
    """A fresh copy of ``member``; a calibrated one calibrates on fewer folds
    when a class has fewer than ``SVM_CALIBRATION_FOLDS`` training clips."""
    fresh = clone(member)
    if isinstance(fresh, CalibratedClassifierCV) and isinstance(fresh.cv, int):
        fresh.set_params(cv=max(2, min(fresh.cv, fewest)))
    return fresh


class VotingEnsemble(ClassifierMixin, BaseEstimator):
    """Soft-voting ensemble of named members.

    Parameters
    ----------
    members : list of (str, estimator)
        Named, unfitted estimators with ``predict_proba``.
    """

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = members

    def fit(self, X: np.ndarray, y: np.ndarray) -> VotingEnsemble:
        """Fit every member on the same data.

        Parameters
        ----------
        X : np.ndarray [shape=(n_samples, n_features)]
        y : np.ndarray [shape=(n_samples,)], class labels
        """
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        fewest = int(np.bincount(codes).min())
        self.members_ = [(name, _sized(est, fewest).fit(X, codes)) for name, est in self.members]
        self.n_features_in_ = X.shape[1]
        self.temperature_ = 1.0
        picked = np.linspace(0, X.shape[0] - 1, min(PROBE_ROWS, X.shape[0])).astype(int)
        self.probe_rows_ = np.array(np.asarray(X)[picked])
        self.probe_answers_ = self._member_stack(self.probe_rows_)
        return self

    def _member_stack(self, X: np.ndarray) -> np.ndarray:
        return np.stack(list(self.member_probabilities(X).values()))

    def answer_drift(self) -> float | None:
        """How far the members' answers to the probe rows kept at fit now are
        from the answers they gave then (largest absolute difference); None for
        files written before probes existed.

        Loaded under another scikit-learn version, a model may still load but
        answer differently; this tells.
        """
        if not hasattr(self, "probe_rows_"):
            return None
        return float(np.max(np.abs(self._member_stack(self.probe_rows_) - self.probe_answers_)))

    def calibrate(self, temperature: float) -> VotingEnsemble:
        """Scale the vote by ``temperature`` (``analyzer.calibration``), fitted on
        out-of-fold predictions; votes and labels do not change."""
        self.temperature_ = float(temperature)
        return self

    def _vote(self, per_member: dict[str, np.ndarray]) -> np.ndarray:
        mean = np.mean(list(per_member.values()), axis=0)
        # Files written before calibration existed have no temperature.
        return with_temperature(mean, getattr(self, "temperature_", 1.0))

    def member_probabilities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Each member's class probabilities, ``name -> [shape=(n, n_classes)]``."""
        return {name: est.predict_proba(X) for name, est in self.members_}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The calibrated mean of the members' probabilities, ``(n_samples, n_classes)``."""
        return self._vote(self.member_probabilities(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    def explain(self, X: np.ndarray) -> list[Prediction]:
        """Label, confidence, probabilities, votes and agreement for each row."""
        per_member = self.member_probabilities(X)
        proba = self._vote(per_member)
        classes = [str(c) for c in self.classes_]
        results = []
        for i in range(X.shape[0]):
            best = int(np.argmax(proba[i]))
            votes = {name: classes[int(np.argmax(p[i]))] for name, p in per_member.items()}
            results.append(
                Prediction(
                    label=classes[best],
                    confidence=round(float(proba[i, best]), 6),
                    probabilities={c: round(float(proba[i, k]), 6) for k, c in enumerate(classes)},
                    votes=votes,
                    agreement=sum(v == classes[best] for v in votes.values()),
                )
            )
        return results


def build_ensemble(
    members: tuple[str, ...] = DEFAULT_MEMBERS, *, random_state: int = 0
) -> VotingEnsemble:
    """An unfitted ensemble of the named members."""
    return VotingEnsemble(
        [(name, make_member(name, random_state=random_state)) for name in members]
    )
