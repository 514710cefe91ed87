"""`Task`: what one output of a multi-task model predicts and how it is scored."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import keras

KINDS = ("binary", "multiclass", "multilabel", "regression")

_DEFAULT_LOSS = {
    "binary": "binary_crossentropy",
    "multilabel": "binary_crossentropy",
    "multiclass": "sparse_categorical_crossentropy",
    "regression": "mean_squared_error",
}
_DEFAULT_METRICS = {
    "binary": ("accuracy", "auc"),
    "multilabel": ("accuracy", "auc"),
    "multiclass": ("accuracy",),
    "regression": ("mae",),
}
_ACTIVATION = {
    "binary": "sigmoid",
    "multilabel": "sigmoid",
    "multiclass": "softmax",
    "regression": "linear",
}


def closest(name: str, choices: Sequence[str]) -> str:
    """Returns ' (did you mean "x"?)' for the closest choice, or ''."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f' (did you mean "{match[0]}"?)' if match else ""


def _serialize(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_serialize(v) for v in value]
    return keras.saving.serialize_keras_object(value)


class Task:
    """One prediction target of a multi-task model.

    Args:
        name: The task's name; it names the model output, its head layer, its
            entries in `y`/`sample_weight` dicts and its metrics
            (`<name>_loss`, `<name>_accuracy`, ...).
        kind: `"binary"`, `"multiclass"`, `"multilabel"` or `"regression"`.
        num_classes: Classes of a multiclass task, labels of a multilabel
            task, targets of a regression task (default 1). Binary tasks
            have one output unit.
        inputs: Names of the model inputs this task's head may read; `None`
            means all of them.
        loss: Loss name, `keras.losses.Loss` or function; default per kind
            (binary cross-entropy, sparse categorical cross-entropy, MSE).
        metrics: Metric names or objects; default per kind (binary:
            accuracy and AUC; multiclass: accuracy; regression: MAE).
        weight: The task's weight in the summed loss.
        hidden: Widths of the task head's hidden ReLU layers (default none:
            the head is one Dense layer, as in the seed).

    Labels may be missing: NaN (float labels) or -1 (class ids, binary and
    multilabel labels) marks a sample the task's loss and metrics skip.

    Example:
    >>> Task("same_sentiment", inputs=["tweet_a", "tweet_b"])
    Task(name='same_sentiment', kind='binary', inputs=['tweet_a', 'tweet_b'])
    """

    def __init__(
        self,
        name: str,
        kind: str = "binary",
        num_classes: int | None = None,
        inputs: Sequence[str] | None = None,
        loss: Any = None,
        metrics: Sequence[Any] | None = None,
        weight: float = 1.0,
        hidden: Sequence[int] = (),
    ) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"Task name must be a non-empty string without '/', got {name!r}."
            )
        if kind not in KINDS:
            raise ValueError(
                f"Task '{name}': kind must be one of {', '.join(KINDS)}, "
                f"got {kind!r}{closest(str(kind), KINDS)}."
            )
        if kind == "binary" and num_classes not in (None, 1, 2):
            raise ValueError(
                f"Task '{name}': a binary task has 1 output unit, "
                f"got num_classes={num_classes}."
            )
        if kind == "multiclass" and (num_classes is None or num_classes < 2):
            raise ValueError(
                f"Task '{name}': a multiclass task needs num_classes >= 2, "
                f"got {num_classes}."
            )
        if kind == "multilabel" and (num_classes is None or num_classes < 1):
            raise ValueError(
                f"Task '{name}': a multilabel task needs num_classes >= 1 "
                f"(the number of labels), got {num_classes}."
            )
        if kind == "regression" and num_classes is not None and num_classes < 1:
            raise ValueError(
                f"Task '{name}': num_classes of a regression task is its number "
                f"of targets (>= 1), got {num_classes}."
            )
        if isinstance(inputs, str):
            inputs = [inputs]
        if float(weight) < 0:
            raise ValueError(f"Task '{name}': weight must be >= 0, got {weight}.")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(
                f"Task '{name}': hidden widths must be >= 1, got {list(hidden)}."
            )
        self.name = name
        self.kind = kind
        self.num_classes = num_classes
        self.inputs = list(inputs) if inputs is not None else None
        self.loss = loss
        self.metrics = list(metrics) if metrics is not None else None
        self.weight = float(weight)
        self.hidden = tuple(int(h) for h in hidden)

    @property
    def units(self) -> int:
        """Width of the task's output layer."""
        if self.kind == "binary":
            return 1
        return int(self.num_classes or 1)

    @property
    def activation(self) -> str:
        """Activation of the task's output layer."""
        return _ACTIVATION[self.kind]

    @property
    def sparse_labels(self) -> bool:
        """True when labels are class ids (one per sample), not one per unit."""
        return self.kind == "multiclass"

    def resolved_loss(self) -> Any:
        """The task's loss, or the default for its kind."""
        return self.loss if self.loss is not None else _DEFAULT_LOSS[self.kind]

    def resolved_metrics(self) -> list[Any]:
        """The task's metrics, or the defaults for its kind."""
        if self.metrics is not None:
            return list(self.metrics)
        return list(_DEFAULT_METRICS[self.kind])

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "num_classes": self.num_classes,
            "inputs": self.inputs,
            "loss": _serialize(self.loss),
            "metrics": _serialize(self.metrics),
            "weight": self.weight,
            "hidden": list(self.hidden),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Task:
        config = dict(config)
        for key in ("loss", "metrics"):
            value = config.get(key)
            if isinstance(value, dict):
                config[key] = keras.saving.deserialize_keras_object(value)
            elif isinstance(value, list):
                config[key] = [
                    keras.saving.deserialize_keras_object(v)
                    if isinstance(v, dict)
                    else v
                    for v in value
                ]
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"kind={self.kind!r}"]
        if self.kind in ("multiclass", "multilabel") or (
            self.kind == "regression" and self.units > 1
        ):
            parts.append(f"num_classes={self.num_classes}")
        if self.inputs is not None:
            parts.append(f"inputs={self.inputs!r}")
        if self.loss is not None:
            parts.append(f"loss={self.loss!r}")
        if self.metrics is not None:
            parts.append(f"metrics={self.metrics!r}")
        if self.weight != 1.0:
            parts.append(f"weight={self.weight}")
        if self.hidden:
            parts.append(f"hidden={list(self.hidden)}")
        return f"Task({', '.join(parts)})"


def as_task(value: Task | dict[str, Any]) -> Task:
    """Accepts a `Task` or its config dict."""
    if isinstance(value, Task):
        return value
    if isinstance(value, dict):
        return Task.from_config(value)
    raise TypeError(f"Expected a Task or a dict of Task arguments, got {value!r}.")
