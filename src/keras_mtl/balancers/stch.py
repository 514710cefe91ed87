"""STCH: smooth Tchebycheff scalarisation of the task losses."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers import epoch_losses
from keras_mtl.balancers.base import (
    Array,
    Context,
    Inputs,
    LossWeighting,
    check_at_least,
    check_positive,
)


class STCHState(NamedTuple):
    sums: Array
    counts: Array
    seen: Array
    nadir: Array
    has_nadir: Array


@dataclasses.dataclass(frozen=True)
class STCH(LossWeighting):
    """Smooth Tchebycheff scalarisation (Lin et al. 2024,
    https://arxiv.org/abs/2402.19078).

    After `warmup_epochs` epochs minimising sum_i log L_i, the average losses
    of the next epoch become the nadir vector n, and from then on the
    objective is k mu log sum_i exp(log(L_i / n_i) / mu): a smooth maximum of
    the normalised log-losses, which concentrates the weight on the task
    that lags most. Its gradient weighs task i by
    k softmax(l / mu)_i / L_i, l_i = log(L_i / n_i).

    Args:
        mu: Smoothing; smaller is closer to the hard maximum.
        warmup_epochs: Epochs before the nadir vector is measured.
        eps: Keeps the logarithms finite.
    """

    key = "stch"
    claims = frozenset({"permutation_invariant"})

    mu: float = 1.0
    warmup_epochs: int = 4
    eps: float = 1e-20

    def check(self) -> None:
        check_positive(self, mu=self.mu, eps=self.eps)
        check_at_least(self, 0, warmup_epochs=self.warmup_epochs)

    def init(self, num_tasks: int, dim: int = 0) -> STCHState:
        z = np.zeros(num_tasks)
        return STCHState(z, z, np.asarray(-1.0), np.ones(num_tasks), np.asarray(0.0))

    def update(
        self, inputs: Inputs, state: STCHState, ctx: Context
    ) -> tuple[Array, STCHState]:
        losses = inputs.losses
        k = len(losses)
        present = ctx.mask(k)
        sums, counts, seen, done = epoch_losses.track(
            state.sums, state.counts, state.seen, ctx.epoch, losses, present
        )
        nadir, has = state.nadir, float(state.has_nadir)
        if done is not None and not has and ctx.epoch > self.warmup_epochs:
            nadir = np.where(np.isnan(done) | (done <= 0), 1.0, done)
            has = 1.0
        state = STCHState(sums, counts, seen, nadir, np.asarray(has))
        floored = np.maximum(losses, self.eps)
        if not has:
            return np.where(present, 1.0 / floored, 0.0), state
        scaled = np.log(floored / nadir) / self.mu
        scaled = np.where(present, scaled, -np.inf)
        e = np.exp(scaled - scaled[present].max()) if present.any() else np.zeros(k)
        soft = e / max(float(e.sum()), 1e-300)
        return np.where(present, k * soft / floored, 0.0), state
