"""Arguments given per task, as Keras users give them: one value for every
task, a list in task order, or a dict by task (or output) name; and the
task of an output built by hand, inferred from its activation.

Every function takes the model's tasks and the output name each task is
bound to (`outputs`, in task order), so that a dict may name either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_mtl.tasks.masking import unreduced
from keras_mtl.tasks.task import Task, closest


def infer_task(name: str, tensor: Any) -> Task:
    """A task for an output built by hand, from its layer's activation:
    sigmoid is binary (one unit) or multilabel, softmax multiclass, anything
    else regression."""
    history = getattr(tensor, "_keras_history", None)
    layer = None if history is None else history.operation
    if layer is not None and isinstance(getattr(layer, "task", None), Task):
        return layer.task
    units = int(tensor.shape[-1]) if tensor.shape and tensor.shape[-1] else 1
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if activation == "sigmoid":
        if units == 1:
            return Task(name, "binary")
        return Task(name, "multilabel", num_classes=units)
    if activation == "softmax" and units > 1:
        return Task(name, "multiclass", num_classes=units)
    return Task(name, "regression", num_classes=units)


def by_task(
    tasks: Sequence[Task],
    outputs: Sequence[str],
    value: Any,
    what: str,
    allow_shared: bool = False,
) -> list[Any]:
    """`value` (dict, list or single) listed in task order; None = absent."""
    n = len(tasks)
    names = [t.name for t in tasks]
    if value is None:
        return [None] * n
    if isinstance(value, dict):
        known = set(names) | set(outputs)
        unknown = [k for k in value if k not in known]
        if unknown:
            raise ValueError(
                f"{what} names {unknown[0]!r}, which is not a task of this "
                f"model; tasks are {', '.join(names)}"
                f"{closest(str(unknown[0]), names)}."
            )
        return [
            value.get(task.name, value.get(output))
            for task, output in zip(tasks, outputs, strict=True)
        ]
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(
                f"{what} is a list of {len(value)} entries but the model has "
                f"{n} tasks ({', '.join(names)}); give one per task "
                "or a dict keyed by task name."
            )
        return list(value)
    if n == 1 or allow_shared:
        return [value] * n
    raise ValueError(
        f"{what} is a single array but the model has {n} tasks "
        f"({', '.join(names)}); give a dict keyed by task name."
    )


def loss_functions(
    tasks: Sequence[Task], outputs: Sequence[str], loss: Any
) -> list[Any]:
    """Each task's unreduced loss function: `loss` for every task, by task,
    or (None, or a task left out) the task's own loss or its kind's."""
    if loss is None:
        specs = [t.resolved_loss() for t in tasks]
    elif isinstance(loss, dict | list | tuple):
        specs = [
            s if s is not None else t.resolved_loss()
            for t, s in zip(tasks, by_task(tasks, outputs, loss, "loss"), strict=True)
        ]
    else:
        specs = [loss] * len(tasks)
    out = []
    for task, spec in zip(tasks, specs, strict=True):
        try:
            out.append(unreduced(spec))
        except ValueError:
            raise ValueError(f"Task '{task.name}': unknown loss {spec!r}.") from None
    return out


def loss_weights(
    tasks: Sequence[Task], outputs: Sequence[str], weights: Any
) -> list[float]:
    """Each task's loss weight: given, or the task's own `weight`."""
    if weights is None:
        return [t.weight for t in tasks]
    out = []
    for task, spec in zip(
        tasks, by_task(tasks, outputs, weights, "loss_weights"), strict=True
    ):
        value = task.weight if spec is None else float(spec)
        if not np.isfinite(value) or value < 0:
            raise ValueError(
                f"Task '{task.name}': loss weight must be a finite number "
                f">= 0, got {spec!r}."
            )
        out.append(value)
    return out


def metric_lists(
    tasks: Sequence[Task], outputs: Sequence[str], metrics: Any, what: str
) -> dict[str, list[Any]]:
    """Each task's metrics by task name. A flat list is every task's
    (Keras 2's rule, so the seed's `metrics=['accuracy']` works on two
    outputs); a dict or a list of lists gives them per task."""
    names = [t.name for t in tasks]
    if metrics is None:
        return {}
    if isinstance(metrics, dict):
        specs = by_task(tasks, outputs, metrics, what)
    elif (
        isinstance(metrics, list | tuple)
        and len(metrics) == len(names)
        and len(names) > 1
        and all(isinstance(m, list | tuple | dict) or m is None for m in metrics)
    ):
        specs = list(metrics)
    elif isinstance(metrics, list | tuple):
        specs = [list(metrics)] * len(names)
    else:
        specs = [[metrics]] * len(names)
    out = {}
    for name, spec in zip(names, specs, strict=True):
        if spec is None:
            out[name] = []
        elif isinstance(spec, list | tuple):
            out[name] = list(spec)
        else:
            out[name] = [spec]
    return out


def standard_inputs(struct: Any, x: Any, where: str = "x") -> Any:
    """In-memory inputs in the structure the model was built with (`struct`,
    the model's `input`): a list (or one array) in the model's input order
    becomes the dict the model takes; a dict with unknown or missing names
    fails naming both sets."""
    if not isinstance(struct, dict):
        return x
    names = list(struct)
    if isinstance(x, dict):
        unknown = [k for k in x if k not in struct]
        missing = [k for k in names if k not in x]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown {', '.join(map(repr, unknown))}")
            if missing:
                parts.append(f"missing {', '.join(map(repr, missing))}")
            raise ValueError(
                f"{where} names the inputs {', '.join(map(repr, x))} but the "
                f"model's inputs are {', '.join(map(repr, names))} "
                f"({'; '.join(parts)})."
            )
        return x
    if isinstance(x, list | tuple) and len(x) == len(names):
        if all(hasattr(v, "shape") for v in x):
            return dict(zip(names, x, strict=True))
    elif len(names) == 1 and hasattr(x, "shape") and hasattr(x, "__len__"):
        return {names[0]: x}
    return x
