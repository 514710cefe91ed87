"""GradDrop: keep, coordinate by coordinate, the gradients of one sign."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import (
    Array,
    Context,
    Inputs,
    JacobianAggregator,
    check_unit,
)


@dataclasses.dataclass(frozen=True)
class GradDrop(JacobianAggregator):
    """Gradient sign dropout (Chen et al. 2020, https://arxiv.org/abs/2010.06808).

    For every coordinate, the positive sign purity P = (1 + sum_i J_i /
    sum_i |J_i|) / 2 is the chance to keep only the positive task gradients
    there (else only the negative ones); one uniform draw per coordinate
    decides. Dropped entries keep a `leak` fraction. At the representation
    level this is the paper's setting (gradients of the activations).

    Args:
        leak: Fraction of a dropped gradient that is kept, in [0, 1].
        seed: Seed of the draws.

    Example:
    >>> GradDrop().aggregate([[1.0, -2.0], [3.0, -1.0]]).tolist()
    [4.0, -3.0]
    """

    key = "graddrop"

    leak: float = 0.0
    seed: int = 0

    def check(self) -> None:
        check_unit(self, leak=self.leak)

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        jacobian = inputs.jacobian
        total = np.abs(jacobian).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            purity = 0.5 * (1.0 + jacobian.sum(axis=0) / total)
        draw = ctx.rng.random(jacobian.shape[1])
        keep = ((purity > draw) & (jacobian > 0)) | ((purity < draw) & (jacobian < 0))
        factor = self.leak + (1.0 - self.leak) * keep
        return (factor * jacobian).sum(axis=0), state
