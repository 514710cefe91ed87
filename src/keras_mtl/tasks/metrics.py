"""Per-task loss trackers and metrics, reported as `<task>_loss`, `<task>_<metric>`.

`TaskMetrics` takes the place Keras gives its own compiled metrics, so the
values reach the progress bar, `History`, callbacks and TensorBoard like any
Keras metric, and its variables travel through the JAX stateless step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_mtl import backend as mtl_backend
from keras_mtl.tasks.masking import faults, update_metric
from keras_mtl.tasks.task import Task

_ACCURACY = {
    "binary": keras.metrics.BinaryAccuracy,
    "multilabel": keras.metrics.BinaryAccuracy,
    "multiclass": keras.metrics.SparseCategoricalAccuracy,
}
_CROSSENTROPY = {
    "binary": keras.metrics.BinaryCrossentropy,
    "multilabel": keras.metrics.BinaryCrossentropy,
    "multiclass": keras.metrics.SparseCategoricalCrossentropy,
}
# Metric names that mean a different metric class for each task kind.
_BY_KIND = {
    "accuracy": _ACCURACY,
    "acc": _ACCURACY,
    "crossentropy": _CROSSENTROPY,
    "ce": _CROSSENTROPY,
}


def _spec_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, keras.metrics.Metric):
        return spec.name
    return getattr(spec, "__name__", type(spec).__name__)


def make_metric(spec: Any, task: Task) -> keras.metrics.Metric:
    """A fresh metric for `task`, named `<task>_<name>`.

    `"accuracy"`/`"acc"`, `"crossentropy"`/`"ce"` and `"auc"` resolve by the
    task's kind, as Keras resolves them by output shape. A metric object is
    copied, so one object given for several tasks never mixes their states.
    """
    name = f"{task.name}_{_spec_name(spec)}"
    if isinstance(spec, str):
        key = spec.lower()
        by_kind = _BY_KIND.get(key)
        if by_kind is not None:
            if task.kind not in by_kind:
                raise ValueError(
                    f"Task '{task.name}' is a regression task: metric "
                    f"'{spec}' is undefined for it (use 'mae' or 'mse')."
                )
            return by_kind[task.kind](name=name)
        if key == "auc":
            if task.kind not in ("binary", "multilabel"):
                raise ValueError(
                    f"Task '{task.name}' is a {task.kind} task: metric 'auc' "
                    "is defined here for binary and multilabel tasks only."
                )
            return keras.metrics.AUC(name=name)
        try:
            resolved = keras.metrics.get(spec)
        except ValueError:
            raise ValueError(f"Task '{task.name}': unknown metric {spec!r}.") from None
        if isinstance(resolved, type):
            return resolved(name=name)
        if isinstance(resolved, keras.metrics.Metric):
            spec = resolved
        else:
            return keras.metrics.MeanMetricWrapper(resolved, name=name)
    if isinstance(spec, keras.metrics.Metric):
        config = spec.get_config()
        config["name"] = name
        return type(spec).from_config(config)
    if callable(spec):
        return keras.metrics.MeanMetricWrapper(spec, name=name)
    raise ValueError(f"Task '{task.name}': {spec!r} is not a metric.")


class LastValues(keras.metrics.Metric):
    """The values of the last update, one log entry per name, all in one
    variable: a balancer's weights (and gradient cosines) at this step.

    One variable rather than one metric per task: every state variable
    costs Keras's step its Python (carried in, assigned back, tracked), so
    ten tasks' weights in one vector save nine of them a step.
    """

    def __init__(self, names: Sequence[str], name: str = "balance") -> None:
        super().__init__(name=name)
        self.names = list(names)
        self.last = self.add_variable(
            shape=(len(self.names),), initializer="zeros", name="last"
        )

    def update_state(self, values: Any) -> None:
        self.last.assign(keras.ops.cast(values, self.dtype))

    def result(self) -> dict[str, Any]:
        # A copy: on PyTorch `.value` is the variable's storage, which the
        # reset before validation would zero in the epoch's logs.
        last = keras.ops.copy(self.last.value)
        return {n: last[i] for i, n in enumerate(self.names)}

    def reset_state(self) -> None:
        self.last.assign(keras.ops.zeros((len(self.names),), self.dtype))


class FiniteMean(keras.metrics.Mean):
    """A mean of the finite values only: the model's `loss` over the steps
    the non-finite guard applied."""

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        ops = keras.ops
        values = ops.convert_to_tensor(values)
        finite = ops.isfinite(values)
        weight = ops.ones_like(values) if sample_weight is None else sample_weight
        weight = ops.cast(ops.broadcast_to(weight, ops.shape(values)), values.dtype)
        super().update_state(
            ops.where(finite, values, 0.0),
            sample_weight=ops.where(finite, weight, 0.0),
        )


class StepFlag(keras.metrics.Metric):
    """What the non-finite guard saw on the last training step, and how many
    steps of the epoch it skipped.

    `nonfinite` is 0 for a good step, i + 1 when task i's loss was not
    finite (the first such task), and the number of tasks + 1 when only the
    gradient was not finite. `keras_mtl.callbacks.NonFiniteGuard` reads it.
    """

    def __init__(self, num_tasks: int, name: str = "nonfinite") -> None:
        super().__init__(name=name)
        self.num_tasks = int(num_tasks)
        self.loss_code = self.add_variable(shape=(), initializer="zeros", name="loss")
        self.code = self.add_variable(shape=(), initializer="zeros", name="code")
        self.skipped = self.add_variable(shape=(), initializer="zeros", name="skipped")

    def update_losses(self, losses: Sequence[Any]) -> None:
        ops = keras.ops
        code = ops.zeros((), self.dtype)
        for i in reversed(range(len(losses))):
            finite = ops.all(ops.isfinite(losses[i]))
            code = ops.where(finite, code, ops.cast(i + 1, self.dtype))
        self.loss_code.assign(code)

    def update_state(self, grads_ok: Any) -> None:
        ops = keras.ops
        loss_code = self.loss_code.value
        code = ops.where(
            loss_code > 0,
            loss_code,
            ops.where(grads_ok, 0.0, float(self.num_tasks + 1)),
        )
        code = ops.cast(code, self.dtype)
        self.code.assign(code)
        self.skipped.assign(self.skipped.value + ops.cast(code > 0, self.dtype))
        self.loss_code.assign(ops.zeros((), self.dtype))

    def result(self) -> Any:
        return keras.ops.copy(self.code.value)


#: Prefix of the log entry that says a task had no labelled sample.
UNLABELLED = "unlabelled:"


class LabelFault(keras.metrics.Metric):
    """The first label out of its task's range in the last batch: which task
    (i + 1; 0 when every label is valid), the value and its row in the
    batch. `keras_mtl.callbacks.LabelGuard` reads it after every batch."""

    def __init__(self, tasks: Sequence[Task], name: str = "label_fault") -> None:
        super().__init__(name=name)
        self.tasks = list(tasks)
        self.code = self.add_variable(shape=(), initializer="zeros", name="code")
        self.value = self.add_variable(shape=(), initializer="zeros", name="value")
        self.row = self.add_variable(shape=(), initializer="zeros", name="row")

    def update_state(
        self, y_true: dict[str, Any], sample_weight: dict[str, Any]
    ) -> None:
        ops = keras.ops
        code = ops.zeros((), self.dtype)
        value = ops.zeros((), self.dtype)
        row = ops.zeros((), self.dtype)
        for i in reversed(range(len(self.tasks))):
            task = self.tasks[i]
            if y_true.get(task.name) is None:
                continue
            found = faults(task, y_true[task.name], sample_weight.get(task.name))
            if found is None:
                continue
            bad, values = found
            first = ops.argmax(ops.cast(bad, "int32"))
            has = ops.any(bad)
            code = ops.where(has, ops.cast(i + 1, self.dtype), code)
            value = ops.where(has, ops.cast(values[first], self.dtype), value)
            row = ops.where(has, ops.cast(first, self.dtype), row)
        self.code.assign(code)
        self.value.assign(value)
        self.row.assign(row)

    def result(self) -> Any:
        return keras.ops.copy(self.code.value)

    def reset_state(self) -> None:
        for v in (self.code, self.value, self.row):
            v.assign(0.0)


class TaskMetrics(keras.metrics.Metric):
    """Holds each task's loss tracker and metrics; reports them as one dict.

    Args:
        tasks: The model's tasks.
        metrics: Per task name, the metric specs masked by labels only.
        weighted_metrics: Per task name, the metric specs also weighted by
            `sample_weight`.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        metrics: dict[str, list[Any]],
        weighted_metrics: dict[str, list[Any]],
        balance_names: Sequence[str] = (),
        name: str = "task_metrics",
        guard: bool = False,
        loss_weights: Sequence[float] | None = None,
    ) -> None:
        loss_trackers = [keras.metrics.Mean(name=f"{t.name}_loss") for t in tasks]
        for tracker in loss_trackers:
            tracker._direction = "down"  # what callbacks read in mode="auto"
        task_metrics = [
            [(make_metric(s, t), False) for s in metrics.get(t.name, [])]
            + [(make_metric(s, t), True) for s in weighted_metrics.get(t.name, [])]
            for t in tasks
        ]
        balance = [LastValues(balance_names)] if balance_names else []
        flag = [StepFlag(len(tasks))] if guard else []
        self_check = LabelFault(tasks)
        penalty = keras.metrics.Mean(name="regularization")
        flat = (
            loss_trackers
            + [m for ms in task_metrics for m, _ in ms]
            + balance
            + flag
            + [self_check, penalty]
        )
        super().__init__(name=name)
        self.metrics = flat
        self.balance_metrics = balance
        self.step_flag = flag[0] if flag else None
        self.label_fault = self_check
        self.penalty = penalty
        self.loss_weights = (
            [1.0] * len(tasks) if loss_weights is None else list(loss_weights)
        )
        # Balancer metrics belong to training steps only; the model sets
        # this while a train or test step is traced.
        self.training = True
        self.tasks = list(tasks)
        self.loss_trackers = loss_trackers
        self.task_metrics = task_metrics
        names = [m.name for m in flat if m not in balance] + list(balance_names)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"Metric names must be unique per task, got {', '.join(repeated)} "
                "twice; give the metric objects distinct names."
            )
        self.built = True

    @property
    def variables(self) -> list[Any]:
        return [v for metric in self.metrics for v in metric.variables]

    def reset_state(self) -> None:
        """Every metric's reset. On JAX the first reset records the
        variables' reset values and later resets restore them at once
        (`keras_mtl.backend.restorer`): Keras's own reset builds each zero
        tensor anew, which `train_on_batch`, resetting every call, paid per
        variable (3 ms a step for ten tasks' metrics on JAX)."""
        variables = self.variables
        key = [id(v) for v in variables]
        saved = self.__dict__.get("_restore")
        if saved is not None and saved[0] == key and saved[1] is not None:
            saved[1]()
            return
        for metric in self.metrics:
            metric.reset_state()
        self.__dict__["_restore"] = (key, mtl_backend.restorer(variables))

    def directions(self) -> dict[str, str]:
        """Each metric's direction by name: `"up"` (accuracy, AUC, ...) or
        `"down"` (losses, errors), where Keras's metric declares one."""
        return {m.name: m._direction for m in self.metrics if hasattr(m, "_direction")}

    def update_losses(self, losses: Sequence[Any], counts: Sequence[Any]) -> None:
        """Adds each task's batch loss, weighted by its labelled count. In a
        guarded training step a loss that is not finite counts for nothing
        (the guard reports it and skips the step); elsewhere it shows."""
        guarded = self.step_flag is not None and self.training
        if guarded:
            self.step_flag.update_losses(losses)
        for tracker, loss, count in zip(
            self.loss_trackers, losses, counts, strict=True
        ):
            if not guarded:
                tracker.update_state(loss, sample_weight=count)
                continue
            finite = keras.ops.isfinite(loss)
            tracker.update_state(
                keras.ops.where(finite, loss, 0.0),
                sample_weight=keras.ops.where(finite, count, 0.0),
            )

    def update_penalty(self, value: Any) -> None:
        """Adds a step's regularization losses (the layers' `losses`)."""
        self.penalty.update_state(value)

    def update_balance(self, values: Any) -> None:
        """Records this step's balancer weights (and gradient cosines), one
        vector in `metric_names`' order."""
        for metric in self.balance_metrics:
            metric.update_state(values)

    def update_state(
        self,
        y_true: dict[str, Any],
        y_pred: dict[str, Any],
        sample_weight: dict[str, Any] | None = None,
    ) -> None:
        sample_weight = sample_weight or {}
        self.label_fault.update_state(y_true, sample_weight)
        for task, ms in zip(self.tasks, self.task_metrics, strict=True):
            if y_true.get(task.name) is None:
                continue
            for metric, weighted in ms:
                update_metric(
                    task,
                    metric,
                    y_true[task.name],
                    y_pred[task.name],
                    sample_weight.get(task.name),
                    use_sample_weight=weighted,
                )
        if self.step_flag is not None and self.training:
            # Set by the guarded optimizer earlier in the same step.
            grads_ok = self.__dict__.get("_grads_ok")
            object.__setattr__(self, "_grads_ok", None)
            self.step_flag.update_state(True if grads_ok is None else grads_ok)

    def result(self) -> dict[str, Any]:
        skip = (
            set()
            if self.training
            else {id(m) for m in self.balance_metrics}
            | ({id(self.step_flag)} if self.step_flag is not None else set())
        )
        skip |= {id(self.label_fault), id(self.penalty)}
        out: dict[str, Any] = {}
        for m in self.metrics:
            if id(m) in skip:
                continue
            value = m.result()
            if isinstance(value, dict):
                out.update(value)
            else:
                out[m.name] = value
        ops = keras.ops
        nan = float("nan")
        total = self.penalty.result()
        for task, tracker, ms, weight in zip(
            self.tasks,
            self.loss_trackers,
            self.task_metrics,
            self.loss_weights,
            strict=True,
        ):
            # A task with no labelled sample has no loss or metric: NaN, not 0.
            labelled = tracker.count.value > 0
            total = total + ops.where(labelled, weight * tracker.result(), 0.0)
            for metric in [tracker] + [m for m, _ in ms]:
                out[metric.name] = ops.where(labelled, out[metric.name], nan)
            # Read (and removed from the logs) by `LabelGuard`.
            out[UNLABELLED + task.name] = ops.cast(ops.logical_not(labelled), "float32")
        # `loss`: each task's mean loss over its labelled samples, weighted
        # and summed, plus the layers' regularization: the same quantity for
        # a single-task model and a multi-task one on partially labelled data
        # (Keras's own tracker averages batch totals, so batches without a
        # task's labels would pull its share towards 0).
        out["loss"] = total
        fault = self.label_fault
        out["label_fault"] = keras.ops.copy(fault.code.value)
        out["label_fault_value"] = keras.ops.copy(fault.value.value)
        out["label_fault_row"] = keras.ops.copy(fault.row.value)
        if self.step_flag is not None and self.training:
            out["skipped_steps"] = keras.ops.copy(self.step_flag.skipped.value)
        return out

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}
