"""Scores of predictions on the host (NumPy): accuracy, ROC AUC, base rate.

Used wherever predictions of different models (Keras models, a
scikit-learn yardstick) must be scored by the same code. Missing labels (NaN,
and -1 for class tasks) are skipped as in training.
"""

from __future__ import annotations

import numpy as np

from keras_mtl.tasks.task import Task


def present(task: Task, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the labelled entries of `y`."""
    y = np.asarray(y, dtype=np.float64)
    mask = ~np.isnan(y)
    if task.kind != "regression":
        mask &= y != -1
    return mask


def _elementwise(task: Task, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    y = np.asarray(y, dtype=np.float64).reshape(len(p), -1)
    p = np.asarray(p, dtype=np.float64).reshape(len(p), -1)
    mask = present(task, y)
    return y[mask], p[mask]


def accuracy(task: Task, y: np.ndarray, p: np.ndarray) -> float:
    """Share of labelled entries predicted right (threshold 0.5, or argmax).

    Example:
    >>> accuracy(Task("t"), np.array([1, 0, np.nan]), np.array([0.9, 0.7, 0.1]))
    0.5
    """
    if task.kind == "regression":
        raise ValueError(f"Task '{task.name}' is a regression task: no accuracy.")
    if task.kind == "multiclass":
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        mask = present(task, y)
        if not mask.any():
            return float("nan")
        return float((np.argmax(p[mask], axis=-1) == y[mask]).mean())
    y, p = _elementwise(task, y, p)
    if y.size == 0:
        return float("nan")
    return float(((p >= 0.5) == (y >= 0.5)).mean())


def roc_auc(task: Task, y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve of a binary or multilabel (pooled) task: the
    probability that a random positive scores above a random negative, ties
    counting half (the Mann-Whitney statistic).

    Example:
    >>> roc_auc(Task("t"), np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    if task.kind not in ("binary", "multilabel"):
        raise ValueError(f"Task '{task.name}' is {task.kind}: AUC is for binary tasks.")
    y, p = _elementwise(task, y, p)
    positive = y >= 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sorted_p = p[order]
    # Average ranks over ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_p)) + 1]
    ends = np.r_[starts[1:], len(p)]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def base_rate(task: Task, y: np.ndarray) -> float:
    """Accuracy of always predicting the majority class (of labelled entries).

    Example:
    >>> base_rate(Task("t"), np.array([1, 0, 0, 0]))
    0.75
    """
    if task.kind == "regression":
        raise ValueError(f"Task '{task.name}' is a regression task: no base rate.")
    y = np.asarray(y, dtype=np.float64)
    y = y[present(task, y)]
    if y.size == 0:
        return float("nan")
    if task.kind == "multiclass":
        return float(np.bincount(y.astype(np.int64)).max() / y.size)
    rate = float((y >= 0.5).mean())
    return max(rate, 1.0 - rate)


def mean_absolute_error(task: Task, y: np.ndarray, p: np.ndarray) -> float:
    """Mean absolute error over labelled entries."""
    y, p = _elementwise(task, y, p)
    return float(np.abs(y - p).mean()) if y.size else float("nan")


def primary_score(task: Task, y: np.ndarray, p: np.ndarray) -> tuple[str, float]:
    """The score a task is judged by: accuracy, or MAE for regression."""
    if task.kind == "regression":
        return "mae", mean_absolute_error(task, y, p)
    return "accuracy", accuracy(task, y, p)


def macro_f1(task: Task, y: np.ndarray, p: np.ndarray) -> float:
    """The mean over classes of F1 (binary: both classes), labelled entries
    only; a class never predicted nor present counts 0.

    Example:
    >>> round(macro_f1(Task("t"), np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.1, 0.4])), 4)
    0.7333
    """
    if task.kind == "multiclass":
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        mask = present(task, y)
        truth = y[mask].astype(np.int64)
        guess = np.argmax(np.asarray(p)[mask], axis=-1)
        classes = range(task.units)
    elif task.kind in ("binary", "multilabel"):
        y, p = _elementwise(task, y, p)
        truth, guess = (y >= 0.5).astype(np.int64), (p >= 0.5).astype(np.int64)
        classes = (0, 1)
    else:
        raise ValueError(f"Task '{task.name}' is a regression task: no F1.")
    if truth.size == 0:
        return float("nan")
    scores = []
    for c in classes:
        tp = float(np.sum((guess == c) & (truth == c)))
        fp = float(np.sum((guess == c) & (truth != c)))
        fn = float(np.sum((guess != c) & (truth == c)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def task_scores(task: Task, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every score of a task's kind: accuracy, macro-F1 and AUC for
    classification (AUC for binary and multilabel), MAE and RMSE for
    regression."""
    if task.kind == "regression":
        yy, pp = _elementwise(task, y, p)
        return {
            "mae": float(np.abs(yy - pp).mean()) if yy.size else float("nan"),
            "rmse": float(np.sqrt(((yy - pp) ** 2).mean()))
            if yy.size
            else float("nan"),
        }
    out = {"accuracy": accuracy(task, y, p), "macro_f1": macro_f1(task, y, p)}
    if task.kind in ("binary", "multilabel"):
        out["auc"] = roc_auc(task, y, p)
    return out


#: Whether a higher value of a score is better (for Δm%).
HIGHER_IS_BETTER = {
    "accuracy": True,
    "macro_f1": True,
    "auc": True,
    "mae": False,
    "rmse": False,
}
