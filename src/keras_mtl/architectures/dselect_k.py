"""DSelect-k: differentiable, sparse selection of k experts per task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_mtl.architectures.base import (
    Architecture,
    Tensor,
    build_stack,
    mlp,
    run,
    track,
)
from keras_mtl.architectures.mmoe import mix


def smooth_step(t: Tensor, gamma: float) -> Tensor:
    """0 below -gamma/2, 1 above gamma/2, a cubic in between (continuously
    differentiable): the gate's binary switch."""
    cubic = -2.0 / gamma**3 * t**3 + 1.5 / gamma * t + 0.5
    return ops.where(t <= -gamma / 2, 0.0, ops.where(t >= gamma / 2, 1.0, cubic))


@keras.saving.register_keras_serializable(package="keras_mtl")
class DSelectK(Architecture):
    """DSelect-k (Hazimeh et al. 2021, https://arxiv.org/abs/2106.03760).

    Each task's gate is a mixture of k selectors; a selector picks one of the
    n experts through m = ceil(log2 n) smooth binary switches, so the gate
    reaches exactly k experts once the switches saturate, while staying
    differentiable. Selectors and their mixture weights depend on the input
    (the per-example gate of the paper). An entropy penalty on the selectors
    (weight `entropy`) pushes them towards single experts.

    Args:
        num_tasks: Number of tasks.
        num_experts: n, shared experts.
        k: Selectors per task.
        expert_units: Widths of each expert's ReLU layers.
        gamma: Width of the smooth step's transition.
        entropy: Weight of the selectors' entropy penalty (a layer loss).

    Example:
    >>> import numpy as np
    >>> d = DSelectK(2, num_experts=4, k=2, expert_units=[3])
    >>> [t.shape for t in d(np.ones((5, 6)))]
    [(5, 3), (5, 3)]
    >>> np.allclose(np.asarray(d.gates(np.ones((5, 6)))[1]).sum(-1), 1.0)
    True
    """

    key = "dselect_k"
    config_keys = ("num_experts", "k", "expert_units", "gamma", "entropy")

    def __init__(
        self,
        num_tasks: int,
        num_experts: int = 8,
        k: int = 2,
        expert_units: Sequence[int] = (16,),
        gamma: float = 1.0,
        entropy: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        if int(num_experts) < 2 or not 1 <= int(k) <= int(num_experts):
            raise ValueError(
                f"DSelectK needs num_experts >= 2 and 1 <= k <= num_experts, got "
                f"num_experts={num_experts}, k={k}."
            )
        if gamma <= 0 or entropy < 0:
            raise ValueError("DSelectK needs gamma > 0 and entropy >= 0.")
        self.num_experts, self.k = int(num_experts), int(k)
        self.expert_units = self.widths(expert_units, "expert_units")
        self.gamma, self.entropy = float(gamma), float(entropy)
        self.bits = max(1, math.ceil(math.log2(self.num_experts)))
        codes = (np.arange(self.num_experts)[:, None] >> np.arange(self.bits)) & 1
        self.codes = codes.astype("float32")  # (experts, bits)
        experts = [
            mlp(self.expert_units, f"expert_{e}") for e in range(self.num_experts)
        ]
        object.__setattr__(self, "experts", track(self, "expert_layers", experts))
        self.switches = [
            keras.layers.Dense(self.k * self.bits, name=f"switches_{t}")
            for t in range(self.num_tasks)
        ]
        self.selector_weights = [
            keras.layers.Dense(
                self.k, activation="softmax", name=f"selector_weights_{t}"
            )
            for t in range(self.num_tasks)
        ]

    def build(self, input_shape: tuple) -> None:
        for expert in self.experts:
            build_stack(expert, tuple(input_shape))
        for layer in [*self.switches, *self.selector_weights]:
            layer.build(tuple(input_shape))

    def _selectors(self, x: Tensor, t: int) -> Tensor:
        """(batch, k, experts): each selector's distribution over experts."""
        z = ops.reshape(self.switches[t](x), (-1, self.k, self.bits))
        s = ops.expand_dims(smooth_step(z, self.gamma), 2)  # (batch, k, 1, bits)
        codes = ops.convert_to_tensor(self.codes)
        per_bit = s * codes + (1.0 - s) * (1.0 - codes)  # (batch, k, experts, bits)
        r = ops.prod(per_bit, axis=-1)
        # With n not a power of two, unused codes get mass: renormalise.
        return r / ops.maximum(ops.sum(r, axis=-1, keepdims=True), 1e-12)

    def gates(self, x: Tensor) -> list[Tensor]:
        """Each task's distribution over the experts, (batch, experts)."""
        out = []
        for t in range(self.num_tasks):
            alpha = ops.expand_dims(self.selector_weights[t](x), -1)  # (batch, k, 1)
            out.append(ops.sum(alpha * self._selectors(x, t), axis=1))
        return out

    def call(self, x: Tensor) -> list[Tensor]:
        experts = [run(e, x) for e in self.experts]
        if self.entropy > 0:
            for t in range(self.num_tasks):
                r = self._selectors(x, t)
                self.add_loss(
                    self.entropy * ops.mean(-ops.sum(r * ops.log(r + 1e-9), -1))
                )
        return [mix(experts, gate) for gate in self.gates(x)]

    def output_width(self, input_width: int) -> int:
        return self.expert_units[-1]
