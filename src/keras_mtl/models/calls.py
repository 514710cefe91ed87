"""Layer calls replaced while a train step is traced.

`replaced_calls` swaps layers' `call` for the length of a block (the rules
inside autodiff use it to perturb and record ruled layers); `fast_pooling`
uses it to run Keras's max-pooling layers through the backend's own max
pooling where it has one (JAX: the same forward pass, a backward pass
without XLA's select-and-scatter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras

from keras_mtl import backend as mtl_backend

_POOLS = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
)


@contextlib.contextmanager
def replaced_calls(calls: dict[Any, Callable[..., Any]]) -> Iterator[None]:
    """Within, calling each layer of `calls` runs its function instead of
    the layer's `call` (Keras's `__call__` around it is unchanged)."""
    for layer, call in calls.items():
        object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        for layer in calls:
            layer.__dict__.pop("call", None)


def _fast_pool(layer: Any, pool: Callable[..., Any]) -> Callable[..., Any]:
    def call(inputs: Any) -> Any:
        return pool(inputs, layer.pool_size, layer.padding, layer.data_format)

    return call


def fast_pooling(model: Any) -> contextlib.AbstractContextManager:
    """Within, the model's Keras max-pooling layers whose windows do not
    overlap (strides equal to the pool size, Keras's default) pool through
    the backend's `max_pool`, where it has one: the same outputs and the
    same gradients, faster (docs/benchmarks.md)."""
    pool = getattr(mtl_backend.module(), "max_pool", None)
    if pool is None:
        return contextlib.nullcontext()
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, _POOLS)
        and type(layer).call is keras.layers.MaxPooling2D.call
        and tuple(layer.strides) == tuple(layer.pool_size)
        and layer.padding in ("valid", "same")
    ]
    return replaced_calls({layer: _fast_pool(layer, pool) for layer in layers})
