"""MMoE: shared experts mixed by one gate per task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_mtl.architectures.base import (
    Architecture,
    Tensor,
    build_stack,
    mlp,
    run,
    track,
)


def mix(experts: list[Tensor], gate: Tensor) -> Tensor:
    """sum_e gate[:, e] * experts[e]."""
    stacked = ops.stack(experts, axis=1)  # (batch, experts, width)
    return ops.sum(stacked * ops.expand_dims(gate, -1), axis=1)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MMoE(Architecture):
    """Multi-gate mixture of experts (Ma et al. 2018,
    https://doi.org/10.1145/3219819.3220007).

    Every task mixes the same experts with its own softmax gate on the input,
    so tasks that need different experts can pick them.

    Args:
        num_tasks: Number of tasks.
        num_experts: Number of shared experts.
        expert_units: Widths of each expert's ReLU layers.

    Example:
    >>> import numpy as np
    >>> m = MMoE(2, num_experts=3, expert_units=[4])
    >>> [t.shape for t in m(np.zeros((5, 6)))]
    [(5, 4), (5, 4)]
    >>> np.allclose(m.gates(np.zeros((5, 6)))[0].sum(axis=-1), 1.0)
    True
    """

    key = "mmoe"
    config_keys = ("num_experts", "expert_units")

    def __init__(
        self,
        num_tasks: int,
        num_experts: int = 8,
        expert_units: Sequence[int] = (16,),
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        if int(num_experts) < 1:
            raise ValueError(f"MMoE needs num_experts >= 1, got {num_experts}.")
        self.num_experts = int(num_experts)
        self.expert_units = self.widths(expert_units, "expert_units")
        experts = [
            mlp(self.expert_units, f"expert_{e}") for e in range(self.num_experts)
        ]
        object.__setattr__(self, "experts", track(self, "expert_layers", experts))
        self.gate_layers = [
            keras.layers.Dense(self.num_experts, activation="softmax", name=f"gate_{t}")
            for t in range(self.num_tasks)
        ]

    def build(self, input_shape: tuple) -> None:
        for expert in self.experts:
            build_stack(expert, tuple(input_shape))
        for gate in self.gate_layers:
            gate.build(tuple(input_shape))

    def gates(self, x: Tensor) -> list[Tensor]:
        """Each task's gate over the experts, (batch, experts)."""
        return [gate(x) for gate in self.gate_layers]

    def call(self, x: Tensor) -> list[Tensor]:
        experts = [run(e, x) for e in self.experts]
        return [mix(experts, gate) for gate in self.gates(x)]

    def output_width(self, input_width: int) -> int:
        return self.expert_units[-1]
