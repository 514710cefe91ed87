"""GradVac: align task gradients towards learned similarity targets."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import (
    Array,
    Context,
    GramianWeighting,
    Inputs,
    check_at_least,
    check_unit,
)


class GradVacState(NamedTuple):
    targets: Array  # EMA of the cosine similarity of each ordered task pair


@dataclasses.dataclass(frozen=True)
class GradVac(GramianWeighting):
    """Gradient vaccine (Wang et al. 2021, https://arxiv.org/abs/2010.05874).

    Generalises PCGrad: each pair of tasks (i, j) has a target cosine
    similarity phi_ij, an exponential moving average of the observed ones.
    When the current g_i is less aligned with g_j than the target, GradVac
    adds the multiple of g_j that raises their cosine exactly to the target.
    With all targets 0 (the first step) it is PCGrad. Whole-model
    granularity; computed in weight space from the Gramian.

    Args:
        beta: Rate of the moving average of the targets.
        eps: Guards the divisions.
        seed: Seed of the random task orders.

    Example:
    >>> GradVac().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.5848, 3.8012, 3.8012]
    """

    key = "gradvac"

    beta: float = 0.5
    eps: float = 1e-8
    seed: int = 0

    def check(self) -> None:
        check_unit(self, beta=self.beta)
        check_at_least(self, 0.0, eps=self.eps)

    def init(self, num_tasks: int, dim: int = 0) -> GradVacState:
        return GradVacState(np.zeros((num_tasks, num_tasks)))

    def update(
        self, inputs: Inputs, state: GradVacState, ctx: Context
    ) -> tuple[Array, GradVacState]:
        gramian = inputs.gramian
        k = len(gramian)
        present = ctx.mask(k)
        targets = state.targets.copy()
        coefficients = np.eye(k)
        for i in range(k):
            if not present[i]:
                continue
            c = coefficients[i]
            inner = c @ gramian  # current g_i . every original g_j
            for j in ctx.rng.permutation(k):
                if j == i or not present[j]:
                    continue
                norm_i = np.sqrt(max(float(c @ inner), 0.0))
                norm_j = np.sqrt(max(float(gramian[j, j]), 0.0))
                phi = float(inner[j]) / (norm_i * norm_j + self.eps)
                target = targets[i, j]
                if phi < target:
                    sin_target = np.sqrt(max(1.0 - target**2, 0.0))
                    w = norm_i * (
                        target * np.sqrt(max(1.0 - phi**2, 0.0)) - phi * sin_target
                    )
                    w /= norm_j * sin_target + self.eps
                    c[j] += w
                    inner = inner + w * gramian[j]
                targets[i, j] = (1 - self.beta) * target + self.beta * phi
        return coefficients.sum(axis=0), GradVacState(targets)
