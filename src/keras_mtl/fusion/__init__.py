"""Fusion layers: how a task's head reads the encodings of several inputs."""

from __future__ import annotations

from typing import Any

from keras_mtl.fusion.base import Fusion
from keras_mtl.fusion.concatenate import Concatenate
from keras_mtl.fusion.elementwise import AbsDifference, Mean, Product, Sum
from keras_mtl.fusion.pair import PairFeatures
from keras_mtl.fusion.per_input import PerInput
from keras_mtl.registry import lookup

FUSIONS: dict[str, type[Fusion]] = {
    cls.key: cls
    for cls in (Concatenate, PerInput, Sum, Mean, Product, AbsDifference, PairFeatures)
}


def get(fusion: str | Fusion, **kwargs: Any) -> Fusion:
    """Returns a fusion layer by name (`"concatenate"`, `"per_input"`, ...).

    Example:
    >>> type(get("pair")).__name__
    'PairFeatures'
    """
    return lookup("fusion", fusion, FUSIONS, Fusion, **kwargs)


__all__ = [
    "FUSIONS",
    "AbsDifference",
    "Concatenate",
    "Fusion",
    "Mean",
    "PairFeatures",
    "PerInput",
    "Product",
    "Sum",
    "get",
]
