"""Random loss weighting."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, LossWeighting


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
    random = True

    def __init__(self, seed: int = 0) -> None:
        self._seed = int(seed)

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        z = ctx.rng.standard_normal(len(losses))
        e = np.exp(z - z.max())
        return e / e.sum(), state

    def get_config(self) -> dict[str, Any]:
        return {"seed": self._seed}
