"""The base of the sharing architectures: one representation in, one per task out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

Tensor = Any


def mlp(
    units: Sequence[int], name: str, activation: str = "relu"
) -> list[keras.layers.Layer]:
    """Dense layers of the given widths."""
    return [
        keras.layers.Dense(int(u), activation=activation, name=f"{name}_{i}")
        for i, u in enumerate(units)
    ]


def track(owner: keras.layers.Layer, name: str, nested: Any) -> Any:
    """Registers the layers of a nested list on `owner` as one flat list
    attribute (what Keras tracks and saves) and returns the nested list
    for use."""
    flat: list[keras.layers.Layer] = []

    def walk(item: Any) -> None:
        if isinstance(item, keras.layers.Layer):
            flat.append(item)
        else:
            for sub in item:
                walk(sub)

    walk(nested)
    setattr(owner, name, flat)
    return nested


def run(layers: Sequence[keras.layers.Layer], x: Tensor) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


def build_stack(layers: Sequence[keras.layers.Layer], shape: tuple) -> tuple:
    """Builds layers in sequence; returns the output shape."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


class Architecture(keras.layers.Layer):
    """Maps a shared representation (batch, features) to one tensor per task.

    Subclasses implement `build` and `call`, returning a list with one
    (batch, width) tensor per task, in task order; `build_model` puts each
    task's head on its tensor.

    Args:
        num_tasks: Number of tasks.
    """

    #: The registered short name (`keras_mtl.architectures.get(name)`).
    key: str = ""
    #: The constructor arguments besides `num_tasks`, saved by `get_config`
    #: from the attributes of the same names.
    config_keys: tuple[str, ...] = ()

    def __init__(self, num_tasks: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(num_tasks) < 1:
            raise ValueError(
                f"Architecture '{self.key}' needs num_tasks >= 1, got {num_tasks}."
            )
        self.num_tasks = int(num_tasks)

    def widths(self, units: Sequence[int], argument: str) -> list[int]:
        """`units` as ints, checked to name at least one layer width."""
        if not units:
            raise ValueError(
                f"Architecture '{self.key}' needs at least one layer width in "
                f"{argument}."
            )
        return [int(u) for u in units]

    def output_width(self, input_width: int) -> int:
        """The width of each task's tensor, given the input's."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple) -> list[tuple]:
        width = self.output_width(input_shape[-1])
        return [(*input_shape[:-1], width)] * self.num_tasks

    def get_config(self) -> dict[str, Any]:
        own = {key: getattr(self, key) for key in self.config_keys}
        return {**super().get_config(), "num_tasks": self.num_tasks, **own}
