"""FAMO: fast adaptive multitask optimisation with O(1) space and time."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import (
    Array,
    Context,
    Inputs,
    LossWeighting,
    check_at_least,
    check_positive,
)


class FAMOState(NamedTuple):
    logits: Array
    m: Array  # Adam moments of the logits
    v: Array
    previous: Array  # last step's losses
    updates: Array  # Adam steps taken


@dataclasses.dataclass(frozen=True)
class FAMO(LossWeighting):
    """FAMO (Liu et al. 2023, https://arxiv.org/abs/2306.03792).

    Minimises sum_i z_i log L_i with z = softmax(logits): the gradient weighs
    task i by z_i / (c L_i), c = sum_j z_j / L_j, so every task's log-loss
    should fall at the same rate. The logits learn from how much each
    log-loss actually fell: delta_i = log L_i(previous) - log L_i(now), one
    Adam step on the logits along z * (delta - z.delta) plus weight decay.

    Here delta uses the next step's batch instead of a second forward pass
    of the same batch after the update (the paper's choice): FAMO keeps the
    cost of one forward and one backward pass per step.

    Args:
        lr: Learning rate of the logits (Adam).
        weight_decay: L2 decay of the logits.
        eps: Added to the losses inside the logarithm.
    """

    key = "famo"
    claims = frozenset({"permutation_invariant"})

    lr: float = 0.025
    weight_decay: float = 1e-3
    eps: float = 1e-8

    def check(self) -> None:
        check_positive(self, lr=self.lr, eps=self.eps)
        check_at_least(self, 0.0, weight_decay=self.weight_decay)

    def init(self, num_tasks: int, dim: int = 0) -> FAMOState:
        z = np.zeros(num_tasks)
        # previous = -1: no loss seen yet (FAMO's losses are positive). A
        # finite mark keeps the state finite, as the step's guard wants, and
        # equal in every process (NaN never equals itself).
        return FAMOState(z, z, z, np.full(num_tasks, -1.0), np.asarray(0.0))

    def update(
        self, inputs: Inputs, state: FAMOState, ctx: Context
    ) -> tuple[Array, FAMOState]:
        losses = inputs.losses
        present = ctx.mask(len(losses))
        logits, m, v, t = state.logits, state.m, state.v, float(state.updates)
        usable = present & (state.previous >= 0)
        if usable.any():
            z = _softmax(logits)
            delta = np.zeros(len(losses))
            delta[usable] = np.log(state.previous[usable] + self.eps) - np.log(
                losses[usable] + self.eps
            )
            grad = z * (delta - z @ delta) + self.weight_decay * logits
            t += 1
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            step = self.lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
            logits = logits - step
        previous = np.where(present, losses, state.previous)
        z = _softmax(logits)
        inverse = np.where(present, z / (losses + self.eps), 0.0)
        weights = inverse / max(float(inverse.sum()), 1e-300)
        return weights, FAMOState(logits, m, v, previous, np.asarray(t))


def _softmax(x: Array) -> Array:
    e = np.exp(x - x.max())
    return e / e.sum()
