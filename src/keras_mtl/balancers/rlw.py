"""Random loss weighting."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, Inputs, LossWeighting


@dataclasses.dataclass(frozen=True)
class RLW(LossWeighting):
    """Random loss weighting (Lin et al. 2022, https://arxiv.org/abs/2111.10603).

    Each step draws z ~ N(0, I) and weighs the tasks by softmax(z): positive
    weights summing to 1. Reproducible: the draw depends on `seed` and the
    step only.

    Args:
        seed: Seed of the draws.

    Example:
    >>> w = RLW(seed=1).weights([1.0, 1.0, 1.0])
    >>> bool(np.all(w > 0)), round(float(w.sum()), 6)
    (True, 1.0)
    """

    key = "rlw"

    seed: int = 0

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        losses = inputs.losses
        z = ctx.rng.standard_normal(len(losses))
        e = np.exp(z - z.max())
        return e / e.sum(), state
