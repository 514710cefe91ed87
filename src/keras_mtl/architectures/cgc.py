"""CGC: customized gate control, task-specific and shared experts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_mtl.architectures.base import (
    Architecture,
    Tensor,
    build_stack,
    mlp,
    run,
    track,
)
from keras_mtl.architectures.mmoe import mix


class ExpertLevel:
    """One extraction level of CGC/PLE: per-task experts, shared experts, a
    gate per task over its own and the shared experts, and optionally a
    shared gate over all experts (to feed the next level)."""

    def __init__(
        self,
        owner: keras.layers.Layer,
        prefix: str,
        num_tasks: int,
        num_shared: int,
        num_task: int,
        units: list[int],
        shared_gate: bool,
    ) -> None:
        self.num_tasks, self.num_shared, self.num_task = num_tasks, num_shared, num_task
        self.task_experts = [
            [mlp(units, f"{prefix}task_{t}_expert_{e}") for e in range(num_task)]
            for t in range(num_tasks)
        ]
        self.shared_experts = [
            mlp(units, f"{prefix}shared_expert_{e}") for e in range(num_shared)
        ]
        self.task_gates = [
            keras.layers.Dense(
                num_task + num_shared, activation="softmax", name=f"{prefix}gate_{t}"
            )
            for t in range(num_tasks)
        ]
        self.shared_gate = (
            keras.layers.Dense(
                num_tasks * num_task + num_shared,
                activation="softmax",
                name=f"{prefix}shared_gate",
            )
            if shared_gate
            else None
        )
        # Track the sublayers on the owning layer for weights and saving.
        gate = [] if self.shared_gate is None else [self.shared_gate]
        track(
            owner,
            f"{prefix}layers",
            [self.task_experts, self.shared_experts, self.task_gates, gate],
        )

    def build(self, shape: tuple) -> None:
        for experts in [*self.task_experts, self.shared_experts]:
            for expert in experts:
                build_stack(expert, shape)
        for gate in self.task_gates:
            gate.build(shape)
        if self.shared_gate is not None:
            self.shared_gate.build(shape)

    def __call__(self, task_inputs: list[Tensor], shared_input: Tensor) -> tuple:
        """Returns (per-task outputs, shared output or None, per-task gates)."""
        shared = [run(e, shared_input) for e in self.shared_experts]
        own = [
            [run(e, x) for e in experts]
            for experts, x in zip(self.task_experts, task_inputs, strict=True)
        ]
        gates = [gate(x) for gate, x in zip(self.task_gates, task_inputs, strict=True)]
        outputs = [mix(own[t] + shared, gates[t]) for t in range(self.num_tasks)]
        shared_out = None
        if self.shared_gate is not None:
            everything = [e for experts in own for e in experts] + shared
            shared_out = mix(everything, self.shared_gate(shared_input))
        return outputs, shared_out, gates


@keras.saving.register_keras_serializable(package="keras_mtl")
class CGC(Architecture):
    """Customized gate control (Tang et al. 2020, "Progressive Layered
    Extraction", https://doi.org/10.1145/3383313.3412236).

    Each task has its own experts besides the shared ones, and its gate mixes
    only its own and the shared experts: task-specific knowledge is kept
    apart, shared knowledge is pooled. PLE stacks such levels.

    Args:
        num_tasks: Number of tasks.
        num_shared_experts: Shared experts.
        num_task_experts: Experts of each task.
        expert_units: Widths of each expert's ReLU layers.

    Example:
    >>> import numpy as np
    >>> [t.shape for t in CGC(2, expert_units=[4])(np.zeros((3, 5)))]
    [(3, 4), (3, 4)]
    """

    key = "cgc"
    config_keys = ("num_shared_experts", "num_task_experts", "expert_units")

    def __init__(
        self,
        num_tasks: int,
        num_shared_experts: int = 1,
        num_task_experts: int = 1,
        expert_units: Sequence[int] = (16,),
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        if (
            int(num_shared_experts) < 0
            or int(num_task_experts) < 0
            or (int(num_shared_experts) + int(num_task_experts) < 1)
        ):
            raise ValueError("CGC needs at least one expert per gate.")
        self.num_shared_experts = int(num_shared_experts)
        self.num_task_experts = int(num_task_experts)
        self.expert_units = self.widths(expert_units, "expert_units")
        self.level = ExpertLevel(
            self,
            "",
            self.num_tasks,
            self.num_shared_experts,
            self.num_task_experts,
            self.expert_units,
            shared_gate=False,
        )

    def build(self, input_shape: tuple) -> None:
        self.level.build(tuple(input_shape))

    def gates(self, x: Tensor) -> list[Tensor]:
        """Each task's gate over its own then the shared experts."""
        return self.level([x] * self.num_tasks, x)[2]

    def call(self, x: Tensor) -> list[Tensor]:
        return self.level([x] * self.num_tasks, x)[0]

    def output_width(self, input_width: int) -> int:
        return self.expert_units[-1]
