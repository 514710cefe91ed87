"""GradNorm: weights that equalise the tasks' training rates."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers import epoch_losses
from keras_mtl.balancers.base import (
    Array,
    Context,
    GramianWeighting,
    Inputs,
    check_at_least,
    check_positive,
)
from keras_mtl.balancers.gramian import norms


class GradNormState(NamedTuple):
    logits: Array  # weights are k softmax(logits)
    sums: Array
    counts: Array
    seen: Array
    initial: Array  # average losses of the first epoch
    has_initial: Array


@dataclasses.dataclass(frozen=True)
class GradNorm(GramianWeighting):
    """GradNorm (Chen et al. 2018, https://arxiv.org/abs/1711.02257).

    Weights w = k softmax(s) (summing to k) are tuned so that each task's
    weighted gradient norm ||w_i g_i|| follows mean_j ||w_j g_j|| r_i^alpha,
    where r_i is task i's loss relative to its first-epoch average, divided
    by the mean of those ratios: tasks that train slowly get larger
    gradients. Each step takes one gradient step of size `lr` on s against
    sum_i | ||w_i g_i|| - target_i |. The first epoch trains with equal
    weights and measures the initial losses, as LibMTL does.

    Args:
        alpha: Strength of the pull towards equal training rates.
        lr: Step size of the weight logits s.
    """

    key = "gradnorm"
    claims = frozenset({"permutation_invariant"})

    alpha: float = 1.5
    lr: float = 0.025

    def check(self) -> None:
        check_positive(self, lr=self.lr)
        check_at_least(self, 0.0, alpha=self.alpha)

    def init(self, num_tasks: int, dim: int = 0) -> GradNormState:
        z = np.zeros(num_tasks)
        return GradNormState(
            z, z, z, np.asarray(-1.0), np.ones(num_tasks), np.asarray(0.0)
        )

    def update(
        self, inputs: Inputs, state: GradNormState, ctx: Context
    ) -> tuple[Array, GradNormState]:
        gramian, losses = inputs.gramian, inputs.losses
        k = len(gramian)
        present = ctx.mask(k)
        sums, counts, seen, done = epoch_losses.track(
            state.sums, state.counts, state.seen, ctx.epoch, losses, present
        )
        initial, has = state.initial, float(state.has_initial)
        if done is not None and not has:
            initial = np.where(np.isnan(done) | (done <= 0), 1.0, done)
            has = 1.0
        logits = state.logits
        if not has:
            new = GradNormState(logits, sums, counts, seen, initial, np.asarray(has))
            return np.ones(k), new
        soft = np.exp(logits - logits.max())
        soft /= soft.sum()
        weights = k * soft
        n = norms(gramian)
        active = present & (n > 0)
        if active.any():
            scaled = weights * n
            ratio = np.where(active, losses / initial, 0.0)
            relative = ratio / max(float(ratio[active].mean()), 1e-12)
            target = float(scaled[active].mean()) * relative**self.alpha
            sign = np.where(active, np.sign(scaled - target), 0.0)
            # d/ds_j of sum_i |w_i n_i - target_i| with w = k softmax(s).
            dw = sign * n
            grad = weights * dw - soft * float(weights @ dw)
            logits = logits - self.lr * grad
        new = GradNormState(logits, sums, counts, seen, initial, np.asarray(has))
        return weights, new
