"""MoCo: multi-objective gradient correction with tracked task gradients."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import (
    Array,
    Context,
    Inputs,
    JacobianAggregator,
    check_at_least,
    check_positive,
)

_NOT_DEFINED = (
    "MoCo tracks a moving average of each task's gradient across steps; "
    "gradients of the shared representation belong to a different batch of "
    "samples at every step, so their average means nothing."
)


class MoCoState(NamedTuple):
    tracked: Array  # Y: moving average of the normalised task gradients
    weights: Array  # lambda
    steps: Array


@dataclasses.dataclass(frozen=True)
class MoCo(JacobianAggregator):
    """MoCo (Fernando et al. 2023, https://openreview.net/forum?id=dLAYGdKTi2).

    Tracks each task's gradient, scaled to the task's loss
    (g_i / ||g_i|| * L_i), with a moving average Y <- Y - beta_t (Y - J),
    then moves the task weights lambda <- softmax(lambda - gamma_t
    (Y Y^T + rho I) lambda) and updates along Y^T lambda. beta_t and gamma_t
    decay as beta / t^beta_sigma and gamma / t^gamma_sigma (LibMTL's
    variant).

    Args:
        beta: Rate of the gradient tracking.
        beta_sigma: Decay exponent of beta.
        gamma: Step size of the weights.
        gamma_sigma: Decay exponent of gamma.
        rho: L2 regularisation of the weights' update.
    """

    key = "moco"
    not_at_representation = _NOT_DEFINED

    beta: float = 0.5
    beta_sigma: float = 0.5
    gamma: float = 0.1
    gamma_sigma: float = 0.5
    rho: float = 0.0

    def check(self) -> None:
        check_positive(self, beta=self.beta, gamma=self.gamma)
        check_at_least(
            self,
            0.0,
            beta_sigma=self.beta_sigma,
            gamma_sigma=self.gamma_sigma,
            rho=self.rho,
        )

    def init(self, num_tasks: int, dim: int = 0) -> MoCoState:
        return MoCoState(
            np.zeros((num_tasks, dim)),
            np.full(num_tasks, 1.0 / num_tasks),
            np.asarray(0.0),
        )

    def update(
        self, inputs: Inputs, state: MoCoState, ctx: Context
    ) -> tuple[Array, MoCoState]:
        jacobian, losses = inputs.jacobian, inputs.losses
        k = len(jacobian)
        present = ctx.mask(k)
        t = float(state.steps) + 1
        beta = self.beta / t**self.beta_sigma
        gamma = self.gamma / t**self.gamma_sigma
        norm = np.linalg.norm(jacobian, axis=1, keepdims=True)
        scaled = jacobian / (norm + 1e-8) * losses[:, None]
        tracked = np.where(
            present[:, None],
            state.tracked - beta * (state.tracked - scaled),
            state.tracked,
        )
        gram = tracked @ tracked.T + self.rho * np.eye(k)
        z = state.weights - gamma * gram @ state.weights
        e = np.exp(z - z.max())
        weights = e / e.sum()
        return weights @ tracked, MoCoState(tracked, weights, np.asarray(t))
