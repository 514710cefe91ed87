"""Guards that stop a run with one sentence: a step that is not finite is
never applied, a label outside its task's range stops `fit` and `evaluate`,
and a task with no labelled sample is reported, not averaged in."""

from __future__ import annotations

import warnings
from typing import Any

import keras

from keras_mtl.callbacks.checkpoint import Checkpoint
from keras_mtl.tasks import masking
from keras_mtl.tasks.metrics import UNLABELLED


class NonFiniteError(RuntimeError):
    """A task's loss or the gradient stopped being finite; the step was not
    applied."""


class NonFiniteGuard(keras.callbacks.Callback):
    """Acts on the step flag that a guarded model reports (added by
    `MultiTaskModel.fit`; the optimizer step itself is skipped in the graph).

    Args:
        mode: `"stop"` raises `NonFiniteError` naming the task, the step and
            the last good checkpoint; `"skip"` goes on, counting the steps
            it skipped as `skipped_steps` in the epoch's logs.
        checkpoint: The run's `Checkpoint`, if any, to name in the message.
    """

    def __init__(self, mode: str = "stop", checkpoint: Checkpoint | None = None):
        super().__init__()
        self.mode = mode
        self.checkpoint = checkpoint
        self.epoch = 0
        self.global_step = 0
        self.skipped: list[str] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def _where(self, batch: int) -> str:
        offset = self.checkpoint.offset if self.checkpoint is not None else 0
        return (
            f"step {self.global_step} (epoch {self.epoch + 1}, batch "
            f"{offset + batch + 1})"
        )

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.global_step += 1
        if logs is None:
            return
        code = int(round(float(logs.pop("nonfinite", 0.0))))
        if self.mode == "stop":
            logs.pop("skipped_steps", None)
        if code == 0:
            return
        tasks = self.model.task_names
        if code <= len(tasks):
            what = f"task '{tasks[code - 1]}': its loss is not finite"
        else:
            what = "the gradient is not finite (every task's loss is)"
        message = f"At {self._where(batch)}, {what}; the update was not applied."
        if self.mode == "skip":
            if not self.skipped:
                warnings.warn(message + " Skipping such steps.", stacklevel=2)
            self.skipped.append(message)
            return
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()  # the model in memory holds the last good weights
        last = self.checkpoint.last_path if self.checkpoint is not None else None
        if last is not None:
            message += f" Last good checkpoint: {last}."
        else:
            message += (
                " No checkpoint was written (add keras_mtl.callbacks.Checkpoint);"
                " the model in memory holds the last good weights."
            )
        raise NonFiniteError(message)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if logs is not None:
            logs.pop("nonfinite", None)
            if self.mode == "stop":
                logs.pop("skipped_steps", None)


#: The keys of the label check in a step's logs (`TaskMetrics.result`).
LABEL_KEYS = ("label_fault", "label_fault_value", "label_fault_row")


class LabelGuard(keras.callbacks.Callback):
    """Stops training or evaluation at the first label out of its task's
    range (read from the step's `label_fault` logs, so every backend and
    every kind of data is checked batch by batch), and warns once per task
    whose metrics are NaN because the data held no label for it. Added by
    `MultiTaskModel.fit` and `evaluate`."""

    def __init__(self) -> None:
        super().__init__()
        self.warned: set[str] = set()
        self.fitting = False

    def on_train_begin(self, logs: Any = None) -> None:
        self.fitting = True

    def on_train_end(self, logs: Any = None) -> None:
        self.fitting = False

    def _check(self, batch: int, logs: Any, where: str) -> None:
        if logs is None:
            return
        for key in [k for k in logs if k.startswith(UNLABELLED)]:
            del logs[key]
        values = [logs.pop(key, 0.0) for key in LABEL_KEYS]
        code = int(round(float(values[0])))
        if code == 0:
            return
        task = self.model.tasks[code - 1]
        raise ValueError(
            f"Task '{task.name}': label {masking.format_label(float(values[1]))} "
            f"at row {int(round(float(values[2])))} of {where} batch {batch + 1} "
            f"is outside {masking.range_text(task)} (-1 or NaN marks a missing "
            "label)."
        )

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._check(batch, logs, "training")

    def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
        self._check(batch, logs, "validation" if self.fitting else "evaluation")

    def _unlabelled(self, logs: Any, prefix: str, what: str) -> None:
        if logs is None:
            return
        for key in LABEL_KEYS:
            logs.pop(prefix + key, None)
        for name in self.model.task_names:
            flag = logs.pop(f"{prefix}{UNLABELLED}{name}", None)
            if flag is None or name in self.warned:
                continue
            if float(flag) > 0:
                self.warned.add(name)
                warnings.warn(
                    f"Task '{name}' has no labelled sample in the {what} data: "
                    "its loss and metrics are NaN (the total loss leaves it out).",
                    stacklevel=2,
                )

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._unlabelled(logs, "", "training")
        self._unlabelled(logs, "val_", "validation")

    def on_test_end(self, logs: Any = None) -> None:
        self._unlabelled(logs, "", "validation" if self.fitting else "evaluation")
