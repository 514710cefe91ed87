"""Host-side scores against scikit-learn and hand values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from keras_mtl import Task
from keras_mtl.evaluation.scoring import accuracy, base_rate, primary_score, roc_auc


def test_auc_matches_sklearn_with_ties(rng):
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500), 1)  # many ties
    assert roc_auc(Task("t"), y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_missing_labels_are_skipped():
    t = Task("t")
    y = np.array([1, np.nan, 0, -1])
    p = np.array([0.9, 0.1, 0.2, 0.9])
    assert accuracy(t, y, p) == 1.0
    assert roc_auc(t, y, p) == 1.0
    assert base_rate(t, y) == 0.5


def test_multiclass_and_regression():
    t = Task("c", "multiclass", num_classes=3)
    p = np.eye(3)[[0, 1, 2, 2]]
    assert accuracy(t, np.array([0, 1, 1, -1]), p) == pytest.approx(2 / 3)
    assert base_rate(t, np.array([2, 2, 1])) == pytest.approx(2 / 3)
    r = Task("r", "regression")
    assert primary_score(r, np.array([1.0, -1.0]), np.array([2.0, -1.0])) == (
        "mae",
        0.5,
    )
    with pytest.raises(ValueError, match="Task 'r' is a regression task: no accuracy"):
        accuracy(r, np.zeros(2), np.zeros(2))
