"""`dependency_map`: which task can use which input, and what that is worth."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from keras_mtl.analysis.graph import connected_inputs
from keras_mtl.evaluation.scoring import primary_score


@dataclass(frozen=True)
class Dependency:
    """How one task's predictions depend on one input.

    Attributes:
        task: The task.
        input: The input.
        connected: Whether the model graph connects the input to the task's
            output at all. If not, no training can make the task use it.
        mean_abs_change: Mean absolute change of the task's predictions when
            each sample's value of this input is replaced by another
            sample's (all other inputs kept). Exactly 0 when not connected.
        metric: Name of the task's score (accuracy, or MAE for regression);
            None when no labels were given.
        score: The score on the data as given.
        swapped_score: The score with this input swapped.
    """

    task: str
    input: str
    connected: bool
    mean_abs_change: float
    metric: str | None = None
    score: float | None = None
    swapped_score: float | None = None

    @property
    def score_drop(self) -> float | None:
        """How much the score gets worse when the input is swapped."""
        if self.score is None or self.swapped_score is None:
            return None
        if self.metric == "mae":
            return self.swapped_score - self.score
        return self.score - self.swapped_score


@dataclass
class DependencyMap:
    """The dependencies of every (task, input) pair of a model."""

    tasks: list[str]
    inputs: list[str]
    entries: list[Dependency]
    samples: int

    def __getitem__(self, key: tuple[str, str]) -> Dependency:
        task, name = key
        for entry in self.entries:
            if entry.task == task and entry.input == name:
                return entry
        raise KeyError(f"No dependency for task {task!r} and input {name!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and math.isnan(value):
                return None
            return value

        return {
            "samples": self.samples,
            "entries": [
                {
                    k: clean(v)
                    for k, v in {**asdict(e), "score_drop": e.score_drop}.items()
                }
                for e in self.entries
            ],
        }

    def format(self) -> str:
        """A text grid: one row per task, one column per input."""
        header = ["task"] + self.inputs
        rows = []
        for task in self.tasks:
            row = [task]
            for name in self.inputs:
                e = self[task, name]
                cell = f"change {e.mean_abs_change:.4f}"
                if not e.connected:
                    cell = f"not connected, {cell}"
                elif e.score_drop is not None:
                    cell += f", {e.metric} drop {e.score_drop:+.3f}"
                row.append(cell)
            rows.append(row)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
            for r in [header, *rows]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _as_named(model: Any, x: Any) -> dict[str, np.ndarray]:
    names = [t.name for t in model.inputs]
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        if missing:
            raise ValueError(
                f"x has no array for input {missing[0]!r}; the model's inputs are "
                f"{', '.join(names)}."
            )
        return {n: np.asarray(x[n]) for n in names}
    if not isinstance(x, list | tuple):
        x = [x]
    if len(x) != len(names):
        raise ValueError(
            f"x has {len(x)} arrays but the model has {len(names)} inputs "
            f"({', '.join(names)})."
        )
    return {n: np.asarray(v) for n, v in zip(names, x, strict=True)}


def dependency_map(
    model: Any,
    x: Any,
    y: Any = None,
    batch_size: int = 256,
    seed: int = 0,
) -> DependencyMap:
    """Measures, for every (task, input), whether and how much the task uses it.

    Two answers per pair: whether the model graph connects the input to the
    task's output (structure: true for every input a task's head reads), and
    the mean absolute change of the task's predictions when that input is
    swapped for another sample's (behaviour: what the trained weights make of
    the connection). With labels, also the task's score with the input
    swapped: how much the input is worth to the task.

    Args:
        model: A `MultiTaskModel`.
        x: The inputs (a dict by input name, or a list in model input order).
        y: Optional labels, a dict by task name (or as `fit` takes them).
        batch_size: Prediction batch size.
        seed: Seed of the swap (each sample receives another sample's value).

    Returns:
        A `DependencyMap`.
    """
    named = _as_named(model, x)
    n = len(next(iter(named.values())))
    if n < 2:
        raise ValueError("dependency_map needs at least 2 samples to swap inputs.")
    as_list = not isinstance(model.input, dict)
    rebuild = (lambda d: [d[t.name] for t in model.inputs]) if as_list else dict
    labels = (
        None
        if y is None
        else dict(zip(model.task_names, model._labels_by_task(y), strict=True))
    )
    base = model.predict_tasks(rebuild(named), batch_size=batch_size)
    graph = connected_inputs(model)
    order = np.random.default_rng(seed).permutation(n)
    donor = np.empty(n, dtype=np.int64)
    donor[order] = np.roll(order, -1)
    entries = []
    for name in named:
        swapped = dict(named)
        swapped[name] = named[name][donor]
        preds = model.predict_tasks(rebuild(swapped), batch_size=batch_size)
        for task in model.tasks:
            change = float(np.mean(np.abs(preds[task.name] - base[task.name])))
            metric = score = swapped_score = None
            if labels is not None and labels[task.name] is not None:
                metric, score = primary_score(task, labels[task.name], base[task.name])
                _, swapped_score = primary_score(
                    task, labels[task.name], preds[task.name]
                )
            entries.append(
                Dependency(
                    task=task.name,
                    input=name,
                    connected=name in graph[task.name],
                    mean_abs_change=change,
                    metric=metric,
                    score=score,
                    swapped_score=swapped_score,
                )
            )
    return DependencyMap(model.task_names, list(named), entries, n)
