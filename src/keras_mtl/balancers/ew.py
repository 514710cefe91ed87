"""Equal weighting: the plain sum of the task losses."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, Inputs, LossWeighting


@dataclasses.dataclass(frozen=True)
class EW(LossWeighting):
    """Equal weighting: every task weighs 1, the model minimises sum_i L_i.

    The baseline every method is compared with (LibMTL's EW). The training
    step is Keras's own, at the cost of plain Keras.
    """

    key = "ew"
    claims = frozenset({"permutation_invariant"})
    constant = True

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        losses = inputs.losses
        return np.ones(len(losses)), state
