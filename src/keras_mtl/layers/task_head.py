"""The output head of one task."""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl.tasks.task import Task, as_task

Tensor = Any


@keras.saving.register_keras_serializable(package="keras_mtl")
class TaskHead(keras.layers.Layer):
    """Optional hidden ReLU layers, then the task's output layer.

    With no hidden layers (the default) this is one Dense layer, exactly the
    seed's `Dense(1, activation='sigmoid')` for a binary task. The output
    activation follows the task's kind: sigmoid (binary, multilabel),
    softmax (multiclass) or linear (regression).

    Args:
        task: The `Task` (or its config) this head predicts.

    Example:
    >>> import numpy as np
    >>> head = TaskHead(Task("t", hidden=[8]))
    >>> head(np.zeros((2, 5))).shape
    (2, 1)
    """

    def __init__(self, task: Task | dict[str, Any], **kwargs: Any) -> None:
        task = as_task(task)
        kwargs.setdefault("name", task.name)
        super().__init__(**kwargs)
        self.task = task
        self.hidden_layers = [
            keras.layers.Dense(width, activation="relu", name=f"hidden_{i}")
            for i, width in enumerate(task.hidden)
        ]
        self.output_layer = keras.layers.Dense(
            task.units, activation=task.activation, name="output"
        )

    def build(self, input_shape: tuple) -> None:
        shape = input_shape
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_layer.build(shape)

    def call(self, features: Tensor) -> Tensor:
        for layer in self.hidden_layers:
            features = layer(features)
        return self.output_layer(features)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.task.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task": self.task.get_config()}
