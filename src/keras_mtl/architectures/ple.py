"""PLE: progressive layered extraction, stacked CGC levels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_mtl.architectures.base import Architecture, Tensor
from keras_mtl.architectures.cgc import ExpertLevel


@keras.saving.register_keras_serializable(package="keras_mtl")
class PLE(Architecture):
    """Progressive layered extraction (Tang et al. 2020,
    https://doi.org/10.1145/3383313.3412236).

    Stacks extraction levels: at every level each task gates its own and the
    shared experts, and (except at the last level) a shared gate over all
    experts builds the shared input of the next level. One level is CGC.

    Args:
        num_tasks: Number of tasks.
        num_levels: Extraction levels (>= 1).
        num_shared_experts: Shared experts per level.
        num_task_experts: Experts of each task per level.
        expert_units: Widths of each expert's ReLU layers.

    Example:
    >>> import numpy as np
    >>> [t.shape for t in PLE(2, num_levels=3, expert_units=[4])(np.zeros((3, 5)))]
    [(3, 4), (3, 4)]
    """

    key = "ple"
    config_keys = (
        "num_levels",
        "num_shared_experts",
        "num_task_experts",
        "expert_units",
    )

    def __init__(
        self,
        num_tasks: int,
        num_levels: int = 2,
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        expert_units: Sequence[int] = (16,),
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        if int(num_levels) < 1:
            raise ValueError(f"PLE needs num_levels >= 1, got {num_levels}.")
        self.num_levels = int(num_levels)
        self.num_shared_experts = int(num_shared_experts)
        self.num_task_experts = int(num_task_experts)
        self.expert_units = self.widths(expert_units, "expert_units")
        self.levels = [
            ExpertLevel(
                self,
                "" if i == 0 else f"level_{i}_",
                self.num_tasks,
                self.num_shared_experts,
                self.num_task_experts,
                self.expert_units,
                shared_gate=i < self.num_levels - 1,
            )
            for i in range(self.num_levels)
        ]

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for level in self.levels:
            level.build(shape)
            shape = (*shape[:-1], self.expert_units[-1])

    def call(self, x: Tensor) -> list[Tensor]:
        task_inputs, shared = [x] * self.num_tasks, x
        for level in self.levels:
            task_inputs, shared, _ = level(task_inputs, shared)
        return task_inputs

    def output_width(self, input_width: int) -> int:
        return self.expert_units[-1]
