"""Task balancing methods: loss weightings, Gramian weightings, Jacobian aggregators.

`get(name, **params)` returns a method; `model.compile(balancer=...)` takes
a method or its name. Every method checks by hand on NumPy arrays:
`aggregate(jacobian)` for gradient methods, `weights(losses)` for loss
weightings.
"""

from __future__ import annotations

from typing import Any

from keras_mtl.balancers.base import (
    Balancer,
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
)
from keras_mtl.balancers.ew import EW
from keras_mtl.balancers.fixed import Fixed
from keras_mtl.balancers.mean import Mean
from keras_mtl.balancers.mgda import MGDA
from keras_mtl.balancers.upgrad import UPGrad
from keras_mtl.balancers.uw import UW
from keras_mtl.registry import lookup

BALANCERS: dict[str, type[Balancer]] = {
    cls.key: cls
    for cls in (
        EW,
        Fixed,
        UW,
        Mean,
        MGDA,
        UPGrad,
    )
}


def get(balancer: Any, **params: Any) -> Balancer:
    """A balancing method from an object, a name and parameters, or a
    serialized dict (`{"name": ..., "config": {...}}`).

    Example:
    >>> get("upgrad")
    UPGrad(norm_eps=0.0001, reg_eps=0.0001)
    """
    if isinstance(balancer, Balancer):
        return balancer
    if isinstance(balancer, dict):
        return get(balancer["name"], **balancer.get("config", {}))
    try:
        return lookup("balancer", balancer, BALANCERS, **params)
    except TypeError as error:
        raise ValueError(f"Balancer {balancer!r}: {error}.") from None


def serialize(balancer: Balancer) -> dict[str, Any]:
    """The dict `get` rebuilds `balancer` from (saved in compile configs)."""
    return {"name": balancer.key, "config": balancer.get_config()}


__all__ = [
    "BALANCERS",
    "EW",
    "MGDA",
    "UPGrad",
    "UW",
    "Balancer",
    "Fixed",
    "GramianWeighting",
    "JacobianAggregator",
    "LossWeighting",
    "Mean",
    "get",
    "serialize",
]
