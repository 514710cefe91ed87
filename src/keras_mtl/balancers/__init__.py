"""Task balancing methods: loss weightings, Gramian weightings, Jacobian aggregators.

`get(name, **params)` returns a method; `model.compile(balancer=...)` takes
a method or its name. Every method checks by hand on NumPy arrays:
`aggregate(jacobian)` for gradient methods, `weights(losses)` for loss
weightings.
"""

from __future__ import annotations

from typing import Any

from keras_mtl.balancers.aligned_mtl import AlignedMTL
from keras_mtl.balancers.base import (
    Balancer,
    GramianWeighting,
    JacobianAggregator,
    LossWeighting,
)
from keras_mtl.balancers.cagrad import CAGrad
from keras_mtl.balancers.config import ConFIG
from keras_mtl.balancers.db_mtl import DBMTL
from keras_mtl.balancers.dualproj import DualProj
from keras_mtl.balancers.dwa import DWA
from keras_mtl.balancers.ew import EW
from keras_mtl.balancers.fairgrad import FairGrad
from keras_mtl.balancers.famo import FAMO
from keras_mtl.balancers.fixed import Fixed
from keras_mtl.balancers.gls import GLS
from keras_mtl.balancers.graddrop import GradDrop
from keras_mtl.balancers.gradnorm import GradNorm
from keras_mtl.balancers.gradvac import GradVac
from keras_mtl.balancers.imtl_g import IMTLG
from keras_mtl.balancers.imtl_l import IMTLL
from keras_mtl.balancers.mean import Mean
from keras_mtl.balancers.mgda import MGDA
from keras_mtl.balancers.moco import MoCo
from keras_mtl.balancers.nash_mtl import NashMTL
from keras_mtl.balancers.pcgrad import PCGrad
from keras_mtl.balancers.rlw import RLW
from keras_mtl.balancers.stch import STCH
from keras_mtl.balancers.upgrad import UPGrad
from keras_mtl.balancers.uw import UW
from keras_mtl.registry import lookup

#: Every method by name: loss weightings first, then gradient methods.
BALANCERS: dict[str, type[Balancer]] = {
    cls.key: cls
    for cls in (
        EW,
        Fixed,
        UW,
        DWA,
        RLW,
        GLS,
        IMTLL,
        FAMO,
        STCH,
        GradNorm,
        DBMTL,
        Mean,
        PCGrad,
        MGDA,
        CAGrad,
        GradVac,
        GradDrop,
        IMTLG,
        NashMTL,
        AlignedMTL,
        UPGrad,
        DualProj,
        ConFIG,
        FairGrad,
        MoCo,
    )
}


def get(balancer: Any, **params: Any) -> Balancer:
    """A balancing method from an object, a name and parameters, or a
    serialized dict (`{"name": ..., "config": {...}}`).

    Example:
    >>> get("upgrad")
    UPGrad(norm_eps=0.0, reg_eps=0.0001)
    """
    if isinstance(balancer, dict):
        return get(balancer["name"], **balancer.get("config", {}))
    try:
        return lookup("balancer", balancer, BALANCERS, Balancer, **params)
    except TypeError as error:
        raise ValueError(f"Balancer {balancer!r}: {error}.") from None


def serialize(balancer: Balancer) -> dict[str, Any]:
    """The dict `get` rebuilds `balancer` from (saved in compile configs)."""
    return {"name": balancer.key, "config": balancer.get_config()}


__all__ = [
    "BALANCERS",
    "DBMTL",
    "DWA",
    "EW",
    "FAMO",
    "GLS",
    "IMTLG",
    "IMTLL",
    "MGDA",
    "RLW",
    "STCH",
    "UW",
    "AlignedMTL",
    "Balancer",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "FairGrad",
    "Fixed",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "GramianWeighting",
    "JacobianAggregator",
    "LossWeighting",
    "Mean",
    "MoCo",
    "NashMTL",
    "PCGrad",
    "UPGrad",
    "get",
    "serialize",
]
