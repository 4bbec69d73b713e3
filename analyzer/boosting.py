"""Gradient boosting whose fitted trees load fast from a model file.

skops writes every numpy array as a file of its own in the archive and reads
each back through numpy's header parser and its own type audit: about 0.2 ms
an array. A fitted ``HistGradientBoostingClassifier`` holds iterations x
classes tree predictors of three arrays each, plus one bin-threshold array
per feature: the boosting member held 4,066 of the default model's 4,667
arrays, and most of the second every pool worker spent loading it.
``PackedGradientBoosting`` stores them as a few concatenated arrays and
rebuilds the same objects when loaded, so its answers do not change;
pickling (joblib, Dask) goes the same way. It leaves out its loss, rebuilt
on load, whose compiled class scikit-learn 1.7 and 1.9 name differently.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

#: The state entry that replaces ``_predictors`` and the bin thresholds.
PACKED_KEY = "_packed_trees"


class PackedGradientBoosting(HistGradientBoostingClassifier):
    """``HistGradientBoostingClassifier`` that persists its trees packed."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        predictors = state.get("_predictors")
        if not predictors:  # not fitted: nothing to pack
            return state
        trees = [tree for iteration in state.pop("_predictors") for tree in iteration]
        # The loss is rebuilt on load: scikit-learn versions name its compiled
        # class differently, and skops then cannot match the name.
        state.pop("_loss", None)
        mapper = copy.copy(state["_bin_mapper"])
        thresholds = mapper.bin_thresholds_
        mapper.bin_thresholds_ = None
        state["_bin_mapper"] = mapper
        state[PACKED_KEY] = {
            "trees_per_iteration": len(predictors[0]),
            "nodes": np.concatenate([tree.nodes for tree in trees]),
            "node_counts": np.array([len(tree.nodes) for tree in trees], dtype=np.int64),
            "binned_bitsets": np.concatenate([t.binned_left_cat_bitsets for t in trees]),
            "raw_bitsets": np.concatenate([t.raw_left_cat_bitsets for t in trees]),
            "bitset_counts": np.array([len(t.raw_left_cat_bitsets) for t in trees], dtype=np.int64),
            "thresholds": np.concatenate(thresholds),
            "threshold_counts": np.array([len(t) for t in thresholds], dtype=np.int64),
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.pop(PACKED_KEY, None)
        super().__setstate__(state)
        if packed is None:
            return
        # The node record's integer widths follow the platform (32/64 bits).
        records = packed["nodes"].astype(PREDICTOR_RECORD_DTYPE, casting="same_kind", copy=False)
        nodes = _split(records, packed["node_counts"])
        binned = _split(packed["binned_bitsets"], packed["bitset_counts"])
        raw = _split(packed["raw_bitsets"], packed["bitset_counts"])
        trees = [TreePredictor(*parts) for parts in zip(nodes, binned, raw, strict=True)]
        step = int(packed["trees_per_iteration"])
        self._predictors = [trees[i : i + step] for i in range(0, len(trees), step)]
        self._bin_mapper.bin_thresholds_ = _split(packed["thresholds"], packed["threshold_counts"])
        # Predicting uses only its link (logistic or softmax), not the fit's weights.
        self._loss = self._get_loss(sample_weight=None)


def _split(joined: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """``joined`` cut back into consecutive pieces of ``counts`` rows (views)."""
    return np.split(joined, np.cumsum(counts)[:-1])
