"""PCGrad: project away the conflicting part of each task gradient."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs


@dataclasses.dataclass(frozen=True)
class PCGrad(GramianWeighting):
    """PCGrad, gradient surgery (Yu et al. 2020, https://arxiv.org/abs/2001.06782).

    For each task i, in a random order of the other tasks j: if the current
    g_i conflicts with g_j (negative inner product), remove its component
    along g_j. The update is the sum of the modified gradients. Computed in
    weight space from the Gramian: every modified gradient stays a
    combination of the original ones.

    Args:
        seed: Seed of the random task orders (drawn anew every step).

    Example:
    >>> PCGrad().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.5848, 3.8012, 3.8012]
    """

    key = "pcgrad"
    claims = frozenset({"scale_invariant"})

    seed: int = 0

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        weights = np.zeros(k)
        for i in range(k):
            c = np.eye(k)[i]
            for j in ctx.rng.permutation(k):
                if j == i:
                    continue
                inner = float(gramian[j] @ c)
                if inner < 0 and gramian[j, j] > 0:
                    c[j] -= inner / gramian[j, j]
            weights += c
        return weights, state
