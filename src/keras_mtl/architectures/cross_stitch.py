"""Cross-stitch units: one column per task, linearly mixed after each layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_mtl.architectures.base import Architecture, Tensor, track


@keras.saving.register_keras_serializable(package="keras_mtl")
class CrossStitch(Architecture):
    """Cross-stitch networks (Misra et al. 2016, https://arxiv.org/abs/1604.03539).

    Each task has its own column of ReLU layers; after every layer a learned
    tasks x tasks matrix mixes the columns' activations, so the network
    learns how much to share at each depth. The matrices start at
    `self_weight` on the diagonal and share the rest evenly.

    Args:
        num_tasks: Number of tasks.
        units: Widths of each column's layers.
        self_weight: Initial weight of a column's own activations.

    Example:
    >>> import numpy as np
    >>> [t.shape for t in CrossStitch(3, units=[4, 2])(np.zeros((5, 6)))]
    [(5, 2), (5, 2), (5, 2)]
    """

    key = "cross_stitch"
    config_keys = ("units", "self_weight")

    def __init__(
        self,
        num_tasks: int,
        units: Sequence[int] = (32, 16),
        self_weight: float = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        if not 0 <= self_weight <= 1:
            raise ValueError(
                f"CrossStitch: self_weight must be in [0, 1], got {self_weight}."
            )
        self.units = self.widths(units, "units")
        self.self_weight = float(self_weight)
        columns = [
            [
                keras.layers.Dense(u, activation="relu", name=f"task_{t}_layer_{i}")
                for i, u in enumerate(self.units)
            ]
            for t in range(self.num_tasks)
        ]
        object.__setattr__(self, "columns", track(self, "column_layers", columns))

    def build(self, input_shape: tuple) -> None:
        k = self.num_tasks
        other = (1.0 - self.self_weight) / (k - 1) if k > 1 else 0.0
        start = np.full((k, k), other) + np.eye(k) * (self.self_weight - other)
        self.stitches = []
        for column in self.columns:
            shape = tuple(input_shape)
            for layer in column:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        for i in range(len(self.units)):
            w = self.add_weight(shape=(k, k), initializer="zeros", name=f"stitch_{i}")
            w.assign(start)
            self.stitches.append(w)

    def call(self, x: Tensor) -> list[Tensor]:
        h = [x] * self.num_tasks
        for i in range(len(self.units)):
            h = [column[i](h_t) for column, h_t in zip(self.columns, h, strict=True)]
            stacked = ops.stack(h, axis=0)  # (tasks, batch, width)
            mixed = ops.einsum("st,tbd->sbd", self.stitches[i], stacked)
            h = [mixed[t] for t in range(self.num_tasks)]
        return h

    def output_width(self, input_width: int) -> int:
        return self.units[-1]
