"""Hard parameter sharing: one shared bottom for every task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_mtl.architectures.base import Architecture, Tensor, build_stack, mlp, run


@keras.saving.register_keras_serializable(package="keras_mtl")
class SharedBottom(Architecture):
    """Hard parameter sharing (Caruana 1997, "Multitask Learning",
    https://doi.org/10.1023/A:1007379606734): one shared MLP whose output
    every task's tower reads.

    Args:
        num_tasks: Number of tasks.
        units: Widths of the shared ReLU layers.

    Example:
    >>> import numpy as np
    >>> [t.shape for t in SharedBottom(2, units=[8])(np.zeros((3, 5)))]
    [(3, 8), (3, 8)]
    """

    key = "shared_bottom"
    config_keys = ("units",)

    def __init__(
        self, num_tasks: int, units: Sequence[int] = (64,), **kwargs: Any
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        self.units = [int(u) for u in units]
        self.bottom = mlp(self.units, "bottom")

    def build(self, input_shape: tuple) -> None:
        build_stack(self.bottom, tuple(input_shape))

    def call(self, x: Tensor) -> list[Tensor]:
        shared = run(self.bottom, x)
        return [shared] * self.num_tasks

    def output_width(self, input_width: int) -> int:
        return self.units[-1] if self.units else input_width
