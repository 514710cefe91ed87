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

from keras_mtl.task import Task

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
            (`keras_mtl.class_weights`).

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
