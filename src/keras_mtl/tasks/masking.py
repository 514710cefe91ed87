"""Partially labelled data: per-task losses and metrics that skip missing labels.

A label is missing when it is NaN (float labels), -1 (class ids; binary and
multilabel 0/1 labels) or when the task's sample weight is 0 (an explicit
per-task mask). A task's loss is the mean over its labelled samples; a batch
without any label for a task adds exactly zero to the loss and to the
gradients, never NaN. Keras itself has no such rule (keras-team/keras issues
3206 and 7423): its losses average over the whole batch.

Everything here is written with `keras.ops` so it runs inside the compiled
train step of every backend.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_mtl.tasks.task import Task

Tensor = Any


class Labels(NamedTuple):
    """A task's labels made safe to feed a loss, and where they are present.

    Attributes:
        y: Labels with every missing entry replaced by 0. Class ids of shape
            (batch,) for multiclass tasks, else floats of shape (batch, units).
        present: 1.0 where a label is present and its sample weight is not
            zero, 0.0 elsewhere; shape (batch,) or (batch, units) like `y`.
        weight: The sample weight broadcast like `present` (ones if none).
    """

    y: Tensor
    present: Tensor
    weight: Tensor


def labels(
    task: Task, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor = None
) -> Labels:
    """Splits `y_true` into safe labels and a presence mask.

    Args:
        task: The task the labels belong to.
        y_true: Labels of shape (batch,) or (batch, units) (class ids of
            shape (batch,) or (batch, 1) for multiclass tasks).
        y_pred: The task's predictions, shape (batch, units).
        sample_weight: Optional per-sample weights, shape (batch,) or
            (batch, 1); a zero weight marks the sample as unlabelled.

    Returns:
        A `Labels` tuple.
    """
    batch = ops.shape(y_pred)[0]
    floatx = keras.config.floatx()
    if task.sparse_labels:
        y = ops.reshape(y_true, (batch,))
    else:
        y = ops.reshape(y_true, (batch, task.units))
    if keras.backend.is_float_dtype(y.dtype):
        present = ops.logical_not(ops.isnan(y))
    else:
        present = ops.ones_like(y, dtype="bool")
    if task.kind != "regression":
        present = ops.logical_and(present, ops.not_equal(y, -1))
        # A label out of range adds nothing (and cannot crash the loss);
        # `LabelGuard` stops the run after the batch (see `faults`).
        present = ops.logical_and(present, in_range(task, ops.cast(y, "float32")))
    if sample_weight is None:
        weight = ops.ones((batch,), dtype=floatx)
    else:
        weight = ops.cast(ops.reshape(sample_weight, (batch,)), floatx)
    if not task.sparse_labels:
        weight = ops.expand_dims(weight, -1) * ops.ones_like(y, dtype=floatx)
    present = ops.logical_and(present, ops.not_equal(weight, 0))
    if task.sparse_labels:
        y = ops.cast(ops.where(present, y, ops.zeros_like(y)), "int32")
    else:
        y = ops.where(present, ops.cast(y, floatx), ops.zeros_like(y, dtype=floatx))
    return Labels(y, ops.cast(present, floatx), weight)


def in_range(task: Task, value: Tensor) -> Tensor:
    """Where float labels are valid: a class id in `0..num_classes - 1`
    (multiclass), else 0 or 1."""
    if task.sparse_labels:
        return ops.logical_and(
            ops.logical_and(value >= 0.0, value < float(task.num_classes)),
            ops.equal(value, ops.floor(value)),
        )
    return ops.logical_or(ops.equal(value, 0.0), ops.equal(value, 1.0))


def faults(
    task: Task, y_true: Tensor, sample_weight: Tensor = None
) -> tuple[Tensor, Tensor] | None:
    """Where a task's labels lie outside its range, and the wrong values.

    A multiclass label must be a class id in `0..num_classes - 1`, a binary
    or multilabel label 0 or 1; -1 and NaN mean missing, and so does a zero
    sample weight. Regression targets have no range (None is returned).

    Returns:
        `(bad, value)`, both of shape (batch,): whether the row holds a label
        out of range, and its first such value (float).

    Example:
    >>> import numpy as np
    >>> bad, value = faults(Task("d", "multiclass", num_classes=10),
    ...                     np.array([3, -1, 12, 9]))
    >>> np.asarray(bad).tolist(), float(value[2])
    ([False, False, True, False], 12.0)
    """
    if task.kind == "regression":
        return None
    y = ops.convert_to_tensor(y_true)
    batch = ops.shape(y)[0]
    y = ops.cast(ops.reshape(y, (batch, -1)), "float32")
    missing = ops.logical_or(ops.isnan(y), ops.equal(y, -1.0))
    bad = ops.logical_and(ops.logical_not(missing), ops.logical_not(in_range(task, y)))
    if sample_weight is not None:
        weight = ops.reshape(ops.convert_to_tensor(sample_weight), (batch, 1))
        bad = ops.logical_and(bad, ops.not_equal(weight, 0))
    column = ops.argmax(ops.cast(bad, "int32"), axis=1)
    value = ops.take_along_axis(y, ops.expand_dims(column, 1), axis=1)[:, 0]
    return ops.any(bad, axis=1), value


def range_text(task: Task) -> str:
    """A task's valid labels in words, for messages."""
    if task.sparse_labels:
        return f"its classes 0..{task.num_classes - 1}"
    return "0 or 1"


def check_labels(tasks: list[Task], labels: list[Any], where: str = "y") -> None:
    """Raises one sentence for the first label out of its task's range in
    labels held in memory (NumPy arrays, pandas columns, lists), naming the
    task, the value and its row. Streams are checked batch by batch in the
    step instead (`keras_mtl.callbacks.LabelGuard`)."""
    import numpy as np

    for task, y in zip(tasks, labels, strict=True):
        if y is None or not hasattr(y, "__len__") or isinstance(y, str | bytes):
            continue
        try:
            array = np.asarray(y, dtype="float32")
        except (TypeError, ValueError):
            continue
        if array.ndim == 0 or array.shape[0] == 0:
            continue
        found = faults(task, array)
        if found is None:
            continue
        bad = np.asarray(found[0])
        if bad.any():
            row = int(np.argmax(bad))
            value = float(np.asarray(found[1])[row])
            raise ValueError(
                f"Task '{task.name}': label {format_label(value)} at row {row} of "
                f"{where} is outside {range_text(task)} (-1 or NaN marks a "
                "missing label)."
            )


def format_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def unreduced(loss: Any) -> Any:
    """The per-sample form of a loss name, `keras.losses.Loss` or function."""
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    if not callable(loss):
        raise ValueError(f"Expected a loss name, Loss or function, got {loss!r}.")
    return loss


def task_loss(
    task: Task,
    loss_fn: Any,
    y_true: Tensor,
    y_pred: Tensor,
    sample_weight: Tensor = None,
    class_weights: Any = None,
) -> tuple[Tensor, Tensor]:
    """The mean loss over a task's labelled samples, and how many there were.

    For binary, multilabel and regression tasks the loss is computed per
    output unit (labels may be missing unit by unit), so the loss function
    must be elementwise along its last axis, as cross-entropy, MSE, MAE and
    Huber are. Multiclass losses are computed per sample.

    Args:
        task: The task.
        loss_fn: A per-sample loss function, as returned by `unreduced`.
        y_true: The task's labels (see `labels`).
        y_pred: The task's predictions, shape (batch, units).
        sample_weight: Optional per-sample weights (0 = unlabelled).
        class_weights: Optional weight of each class (binary: [w0, w1]),
            multiplying each labelled sample's loss
            (`keras_mtl.tasks.class_weights`).

    Returns:
        `(loss, count)`: the weighted sum of the per-label losses divided by
        the number of present labels (0 when there are none), and that
        number, both scalars.

    Example:
    >>> import numpy as np
    >>> t = Task("t")
    >>> y = np.array([[1.0], [np.nan], [0.0]], "float32")
    >>> p = np.array([[0.9], [0.5], [0.2]], "float32")
    >>> loss, n = task_loss(t, unreduced("binary_crossentropy"), y, p)
    >>> round(float(loss), 4), int(n)  # (-ln 0.9 - ln 0.8) / 2
    (0.1643, 2)
    """
    safe = labels(task, y_true, y_pred, sample_weight)
    # A non-finite prediction gives a NaN loss: the loss function sees 0.5
    # there (PyTorch's binary cross-entropy raises on NaN probabilities).
    bad = ops.logical_not(ops.isfinite(y_pred))
    y_pred = ops.where(bad, ops.cast(0.5, y_pred.dtype), y_pred)
    if task.sparse_labels:
        per_label = loss_fn(safe.y, y_pred)
        bad = ops.any(bad, axis=-1)
    else:
        per_label = loss_fn(ops.expand_dims(safe.y, -1), ops.expand_dims(y_pred, -1))
    per_label = ops.cast(per_label, safe.weight.dtype)
    if class_weights is not None:
        table = ops.convert_to_tensor(class_weights, dtype=safe.weight.dtype)
        if task.sparse_labels:
            per_label = per_label * ops.take(table, safe.y)
        else:
            per_label = per_label * (table[0] + (table[1] - table[0]) * safe.y)
    per_label = ops.where(bad, ops.cast(float("nan"), per_label.dtype), per_label)
    # `where`, not a product: a loss that is inf on a replaced label must not
    # turn 0 * inf into NaN.
    total = ops.sum(
        ops.where(safe.present > 0, per_label * safe.weight, ops.zeros_like(per_label))
    )
    count = ops.sum(safe.present)
    return total / ops.maximum(count, 1.0), count


def update_metric(
    task: Task,
    metric: keras.metrics.Metric,
    y_true: Tensor,
    y_pred: Tensor,
    sample_weight: Tensor = None,
    use_sample_weight: bool = True,
) -> None:
    """Updates one of a task's metrics with its labelled samples only.

    Args:
        task: The task.
        metric: The metric to update.
        y_true: The task's labels (see `labels`).
        y_pred: The task's predictions.
        sample_weight: Optional per-sample weights (0 = unlabelled).
        use_sample_weight: Whether the metric is weighted by `sample_weight`
            (Keras `weighted_metrics`) or only masked by it (`metrics`).
    """
    safe = labels(task, y_true, y_pred, sample_weight)
    weight = safe.present * safe.weight if use_sample_weight else safe.present
    if task.sparse_labels:
        metric.update_state(safe.y, y_pred, sample_weight=weight)
    else:
        metric.update_state(
            ops.expand_dims(safe.y, -1),
            ops.expand_dims(y_pred, -1),
            sample_weight=ops.expand_dims(weight, -1),
        )
