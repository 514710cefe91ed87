"""Per-task class weights: `fit(class_weight=...)` for several outputs.

Keras's `class_weight` serves one output only. Here it is given per task
(`{"hate": "balanced", "emotion": {0: 1.0, 3: 2.5}}`), or `"balanced"` for
every binary and multiclass task, and it weights each labelled sample's
training loss by the weight of its class (validation losses and metrics are
not weighted, as in Keras). `"balanced"` is scikit-learn's rule,
`n_samples / (n_classes * count(class))`, over the task's labelled training
samples: skewed classes then count as much as common ones, which is what a
macro-averaged F1 rewards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_mtl.tasks.task import Task, closest


def _classes(task: Task) -> int:
    return task.units if task.kind == "multiclass" else 2


def balanced(task: Task, labels: Any) -> list[float]:
    """Balanced weights of `task`'s classes from its labels (missing skipped).

    A class with no labelled sample gets weight 1.

    Example:
    >>> balanced(Task("t"), np.array([0, 0, 0, 1, np.nan]))
    [0.6666666666666666, 2.0]
    """
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    keep = ~np.isnan(y) & (y != -1)
    y = y[keep]
    k = _classes(task)
    if task.kind == "binary":
        y = (y >= 0.5).astype(np.int64)
    counts = np.bincount(y.astype(np.int64), minlength=k)[:k].astype(np.float64)
    total = counts.sum()
    return [float(total / (k * c)) if c else 1.0 for c in counts]


def _explicit(task: Task, spec: Any) -> list[float]:
    k = _classes(task)
    if isinstance(spec, Mapping):
        weights = [1.0] * k
        for cls, w in spec.items():
            cls = int(cls)
            if not 0 <= cls < k:
                raise ValueError(
                    f"class_weight of task '{task.name}' names class {cls}, but the "
                    f"task has classes 0..{k - 1}."
                )
            weights[cls] = float(w)
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        weights = [float(w) for w in spec]
        if len(weights) != k:
            raise ValueError(
                f"class_weight of task '{task.name}' lists {len(weights)} weights, "
                f"but the task has {k} classes."
            )
    else:
        raise ValueError(
            f"class_weight of task '{task.name}' must be 'balanced', a dict of "
            f"class -> weight or a list of {k} weights, got {spec!r}."
        )
    if any(not np.isfinite(w) or w < 0 for w in weights):
        raise ValueError(
            f"class_weight of task '{task.name}' must be finite and >= 0, got "
            f"{weights}."
        )
    return weights


def resolve(tasks: Sequence[Task], spec: Any, labels: Any) -> dict[str, list[float]]:
    """Each weighted task's class weights.

    Args:
        tasks: The model's tasks.
        spec: `"balanced"` (every binary and multiclass task), or a dict of
            task name -> `"balanced"`, a dict of class -> weight, or a list
            of one weight per class.
        labels: A callable `task name -> training labels`, used only for
            `"balanced"`.

    Returns:
        Task name -> one weight per class (binary tasks: [w0, w1]).
    """
    by_name = {t.name: t for t in tasks}
    if spec == "balanced":
        spec = {t.name: "balanced" for t in tasks if t.kind in ("binary", "multiclass")}
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"class_weight must be 'balanced' or a dict by task name, got {spec!r}."
        )
    out = {}
    for name, task_spec in spec.items():
        if name not in by_name:
            raise ValueError(
                f"class_weight names task {name!r}, but the tasks are "
                f"{', '.join(by_name)}{closest(str(name), list(by_name))}."
            )
        task = by_name[name]
        if task.kind not in ("binary", "multiclass"):
            raise ValueError(
                f"class_weight weights the classes of binary and multiclass tasks; "
                f"task '{name}' is {task.kind}."
            )
        out[name] = (
            balanced(task, labels(name))
            if task_spec == "balanced"
            else _explicit(task, task_spec)
        )
    return out


def training_labels(x: Any, y: Any, names: Sequence[str]) -> Any:
    """A function `task name -> training labels` for what `fit` was given:
    arrays (a dict by task or a list in task order), or a data set that keeps
    its labels (`MixedBatches`, `ArrayBatches`, `BucketedBatches`)."""
    from keras_mtl.data.mixing import MixedBatches
    from keras_mtl.data.shares import ProcessShare

    if isinstance(x, ProcessShare):
        # Every process weighs by the whole training set's labels.
        x = x.data
    if isinstance(x, MixedBatches):

        def from_sources(name: str) -> np.ndarray:
            parts = [
                np.asarray(s.y[name]).reshape(-1) for s in x.sources if name in s.y
            ]
            return np.concatenate(parts) if parts else np.zeros(0)

        return from_sources
    if y is None:
        y = getattr(x, "y", None)
    if isinstance(y, Mapping):
        return lambda name: np.asarray(y[name]) if name in y else np.zeros(0)
    if isinstance(y, list | tuple) and len(y) == len(names):
        return lambda name: np.asarray(y[list(names).index(name)])
    if y is not None and len(names) == 1:
        return lambda name: np.asarray(y)

    def unknown(name: str) -> np.ndarray:
        raise ValueError(
            f"class_weight 'balanced' for task '{name}' counts the training labels, "
            f"but fit was given {type(x).__name__} whose labels cannot be read "
            "before training; give the weights instead ({class: weight})."
        )

    return unknown
