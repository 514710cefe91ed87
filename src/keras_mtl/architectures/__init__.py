"""Sharing architectures: how tasks share a representation, as Keras layers."""

from __future__ import annotations

from typing import Any

from keras_mtl.architectures.base import Architecture
from keras_mtl.architectures.cgc import CGC
from keras_mtl.architectures.cross_stitch import CrossStitch
from keras_mtl.architectures.dselect_k import DSelectK
from keras_mtl.architectures.esmm import ESMM
from keras_mtl.architectures.mmoe import MMoE
from keras_mtl.architectures.mtan import MTAN
from keras_mtl.architectures.ple import PLE
from keras_mtl.architectures.shared_bottom import SharedBottom
from keras_mtl.registry import lookup

ARCHITECTURES: dict[str, type[Architecture]] = {
    cls.key: cls
    for cls in (SharedBottom, CrossStitch, MMoE, CGC, PLE, DSelectK, ESMM, MTAN)
}


def get(architecture: Any, num_tasks: int | None = None, **kwargs: Any) -> Architecture:
    """An architecture by name (`"mmoe"`, `"ple"`, ...) or the given layer."""
    if num_tasks is None and not isinstance(architecture, Architecture):
        raise ValueError(f"Architecture {architecture!r} needs num_tasks.")
    return lookup(
        "architecture",
        architecture,
        ARCHITECTURES,
        Architecture,
        num_tasks=num_tasks,
        **kwargs,
    )


__all__ = [
    "ARCHITECTURES",
    "CGC",
    "ESMM",
    "MMoE",
    "MTAN",
    "PLE",
    "Architecture",
    "CrossStitch",
    "DSelectK",
    "SharedBottom",
    "get",
]
