"""``PackedGradientBoosting``: the same fitted booster, in a few arrays."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

from analyzer.boosting import PackedGradientBoosting
from analyzer.modelfile import TRUSTED_TYPES


def arrays_in(data: bytes) -> int:
    return sum(name.endswith(".npy") for name in zipfile.ZipFile(io.BytesIO(data)).namelist())


@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_packed_booster_saves_few_arrays_and_answers_the_same(n_classes: int) -> None:
    X, y = make_classification(
        n_samples=300, n_features=12, n_informative=6, n_classes=n_classes, random_state=0
    )
    X[::7, 3] = np.nan  # missing values take their own bin and branch
    settings = {"max_iter": 30, "max_leaf_nodes": 8, "random_state": 0}
    plain = HistGradientBoostingClassifier(**settings).fit(X, y)
    packed = PackedGradientBoosting(**settings).fit(X, y)
    assert np.array_equal(plain.predict_proba(X), packed.predict_proba(X))

    data = sio.dumps(packed)
    trees = 30 * (1 if n_classes == 2 else n_classes)
    assert arrays_in(sio.dumps(plain)) > 3 * trees  # an array file per tree part and feature
    assert arrays_in(data) < 20
    loaded = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    copied = pickle.loads(pickle.dumps(packed))  # joblib and Dask ship it this way
    for other in (loaded, copied):
        assert type(other) is PackedGradientBoosting
        assert np.array_equal(other.predict_proba(X), packed.predict_proba(X))
        assert [len(i) for i in other._predictors] == [len(i) for i in packed._predictors]
        for ours, theirs in zip(
            other._bin_mapper.bin_thresholds_, packed._bin_mapper.bin_thresholds_, strict=True
        ):
            assert np.array_equal(ours, theirs)
    # Saving left the fitted booster itself as it was.
    assert packed._bin_mapper.bin_thresholds_ is not None
    assert np.array_equal(packed.predict_proba(X), plain.predict_proba(X))


def test_categorical_splits_deep_copies_and_further_fitting_survive_packing() -> None:
    import copy

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 6, 400), rng.normal(size=400)]).astype(float)
    y = (np.isin(X[:, 0], [1, 4]) ^ (X[:, 1] > 0.5)).astype(int)
    settings = {"max_iter": 20, "categorical_features": [0], "random_state": 0}
    packed = PackedGradientBoosting(**settings, warm_start=True).fit(X, y)
    assert sum(len(t.raw_left_cat_bitsets) for i in packed._predictors for t in i) > 0
    # skops refuses the categorical bin mapper's functools.partial, as for the
    # stock booster; pickle and deepcopy still go through the packed state.
    for other in (pickle.loads(pickle.dumps(packed)), copy.deepcopy(packed)):
        assert np.array_equal(other.predict_proba(X), packed.predict_proba(X))
        other.set_params(max_iter=30).fit(X, y)  # warm start: 10 more iterations
        assert other.n_iter_ == 30
    plain = HistGradientBoostingClassifier(**settings, warm_start=True).fit(X, y)
    plain.set_params(max_iter=30).fit(X, y)
    assert np.array_equal(other.predict_proba(X), plain.predict_proba(X))


def test_an_unfitted_packed_booster_saves_and_clones() -> None:
    from sklearn.base import clone

    booster = PackedGradientBoosting(max_iter=5)
    loaded = sio.loads(sio.dumps(booster), trusted=sorted(TRUSTED_TYPES))
    assert loaded.get_params() == booster.get_params()
    assert clone(booster).get_params()["max_iter"] == 5
