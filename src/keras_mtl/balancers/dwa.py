"""Dynamic weight average: weights from the rate each loss falls."""

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
    check_positive,
)


class DWAState(NamedTuple):
    sums: Array
    counts: Array
    seen: Array
    previous: Array  # average losses of the last finished epoch
    before: Array  # and of the one before it
    finished: Array  # number of finished epochs


@dataclasses.dataclass(frozen=True)
class DWA(LossWeighting):
    """Dynamic weight average (Liu, Johns & Davison 2019,
    https://arxiv.org/abs/1803.10704).

    From the third epoch on, w = k softmax(r / T) with r_i the ratio of task
    i's average training loss in the last two epochs (L_i(e-1) / L_i(e-2)):
    a task whose loss falls slowly gets more weight. Weights are 1 in the
    first two epochs. Epoch averages are kept in the state.

    Args:
        temperature: T; larger is closer to equal weights.
    """

    key = "dwa"
    claims = frozenset({"permutation_invariant"})

    temperature: float = 2.0

    def check(self) -> None:
        check_positive(self, temperature=self.temperature)

    def init(self, num_tasks: int, dim: int = 0) -> DWAState:
        z = np.zeros(num_tasks)
        return DWAState(
            z,
            z,
            np.asarray(-1.0),
            np.ones(num_tasks),
            np.ones(num_tasks),
            np.asarray(0.0),
        )

    def update(
        self, inputs: Inputs, state: DWAState, ctx: Context
    ) -> tuple[Array, DWAState]:
        losses = inputs.losses
        k = len(losses)
        sums, counts, seen, done = epoch_losses.track(
            state.sums, state.counts, state.seen, ctx.epoch, losses, ctx.mask(k)
        )
        previous, before, finished = state.previous, state.before, float(state.finished)
        if done is not None:
            before = previous
            previous = np.where(np.isnan(done), previous, done)
            finished += 1
        state = DWAState(sums, counts, seen, previous, before, np.asarray(finished))
        if finished < 2:
            return np.ones(k), state
        ratio = previous / np.maximum(before, 1e-12)
        z = ratio / self.temperature
        e = np.exp(z - z.max())
        return k * e / e.sum(), state
