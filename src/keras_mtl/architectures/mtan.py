"""MTAN-style task attention over a shared feature stack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_mtl.architectures.base import Architecture, Tensor, track


@keras.saving.register_keras_serializable(package="keras_mtl")
class MTAN(Architecture):
    """Multi-task attention network (Liu, Johns & Davison 2019,
    https://arxiv.org/abs/1803.10704), for feature vectors.

    A shared stack of ReLU layers learns features for all tasks; each task
    has, at every level, an attention module that reads the shared features
    and the task's own features from the level below, outputs a sigmoid mask
    over the shared features, and passes the masked features through its own
    layer.

    Args:
        num_tasks: Number of tasks.
        units: Widths of the shared levels.

    Example:
    >>> import numpy as np
    >>> [t.shape for t in MTAN(2, units=[8, 4])(np.zeros((3, 5)))]
    [(3, 4), (3, 4)]
    """

    key = "mtan"
    config_keys = ("units",)

    def __init__(
        self, num_tasks: int, units: Sequence[int] = (64, 32), **kwargs: Any
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        self.units = self.widths(units, "units")
        self.shared = [
            keras.layers.Dense(u, activation="relu", name=f"shared_{i}")
            for i, u in enumerate(self.units)
        ]
        masks = [
            [
                keras.layers.Dense(u, activation="sigmoid", name=f"task_{t}_mask_{i}")
                for i, u in enumerate(self.units)
            ]
            for t in range(self.num_tasks)
        ]
        outs = [
            [
                keras.layers.Dense(u, activation="relu", name=f"task_{t}_layer_{i}")
                for i, u in enumerate(self.units)
            ]
            for t in range(self.num_tasks)
        ]
        object.__setattr__(self, "masks", track(self, "mask_layers", masks))
        object.__setattr__(self, "task_layers", track(self, "task_layer_list", outs))

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for i, layer in enumerate(self.shared):
            layer.build(shape)
            width = self.units[i]
            below = 0 if i == 0 else self.units[i - 1]
            for t in range(self.num_tasks):
                self.masks[t][i].build((*shape[:-1], width + below))
                self.task_layers[t][i].build((*shape[:-1], width))
            shape = (*shape[:-1], width)

    def call(self, x: Tensor) -> list[Tensor]:
        shared, own = x, [None] * self.num_tasks
        for i, layer in enumerate(self.shared):
            shared = layer(shared)
            for t in range(self.num_tasks):
                context = (
                    shared if own[t] is None else ops.concatenate([shared, own[t]], -1)
                )
                mask = self.masks[t][i](context)
                own[t] = self.task_layers[t][i](mask * shared)
        return own

    def output_width(self, input_width: int) -> int:
        return self.units[-1]
