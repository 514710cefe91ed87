"""Layer calls replaced while a train step is traced.

`replaced_calls` swaps layers' `call` for the length of a block (the rules
inside autodiff use it to perturb and record ruled layers); `fast_layers`
uses it to run Keras's max-pooling layers through the backend's own max
pooling where it has one (JAX: the same forward pass, a backward pass
without XLA's select-and-scatter), and the softmax attention of Keras's
`MultiHeadAttention` through the backend's own on the CPU (JAX: by chunks
of the batch).
"""

from __future__ import annotations

import contextlib
import math
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
def replaced_calls(
    calls: dict[Any, Callable[..., Any]], method: str = "call"
) -> Iterator[None]:
    """Within, calling each layer of `calls` runs its function instead of
    the layer's `method` (by default `call`: Keras's `__call__` around it
    is unchanged)."""
    for layer, call in calls.items():
        object.__setattr__(layer, method, call)
    try:
        yield
    finally:
        for layer in calls:
            layer.__dict__.pop(method, None)


def _fast_pool(layer: Any, pool: Callable[..., Any]) -> Callable[..., Any]:
    def call(inputs: Any) -> Any:
        return pool(inputs, layer.pool_size, layer.padding, layer.data_format)

    return call


def _fast_attention(layer: Any, attend: Callable[..., Any]) -> Callable[..., Any]:
    """`MultiHeadAttention._compute_attention` through `attend` where Keras
    would run plain softmax attention (no mask, no causal mask, no scores
    returned, one attention axis; `fast_layers` picks layers without
    dropout), else Keras's own."""
    keras_own = type(layer)._compute_attention
    scale = 1.0 / math.sqrt(float(layer.key_dim))

    def compute(
        query: Any,
        key: Any,
        value: Any,
        attention_mask: Any = None,
        training: Any = None,
        return_attention_scores: bool = False,
        **kwargs: Any,
    ) -> Any:
        plain = (
            attention_mask is None
            and not return_attention_scores
            and not kwargs.get("use_causal_mask", False)
            and len(query.shape) == 4
        )
        if not plain:
            return keras_own(
                layer,
                query,
                key,
                value,
                attention_mask,
                training,
                return_attention_scores,
                **kwargs,
            )
        return attend(query, key, value, scale), None

    return compute


@contextlib.contextmanager
def fast_layers(model: Any) -> Iterator[None]:
    """Within, the model's Keras max-pooling layers whose windows do not
    overlap (strides equal to the pool size, Keras's default) pool through
    the backend's `max_pool`, and on the CPU its `MultiHeadAttention`
    layers attend through the backend's `dot_product_attention`, where it
    has them: the same outputs and the same gradients, faster
    (docs/benchmarks.md)."""
    prims = mtl_backend.module()
    pool = getattr(prims, "max_pool", None)
    attend = getattr(prims, "dot_product_attention", None)
    if attend is not None and prims.accelerator():
        attend = None  # Keras's own uses the accelerator's fused kernels
    pools, attentions = {}, {}
    for layer in model._flatten_layers(include_self=False):
        if (
            pool is not None
            and isinstance(layer, _POOLS)
            and type(layer).call is keras.layers.MaxPooling2D.call
            and tuple(layer.strides) == tuple(layer.pool_size)
            and layer.padding in ("valid", "same")
        ):
            pools[layer] = _fast_pool(layer, pool)
        if (
            attend is not None
            and isinstance(layer, keras.layers.MultiHeadAttention)
            and getattr(type(layer), "_compute_attention", None)
            is keras.layers.MultiHeadAttention._compute_attention
            and getattr(layer, "_dropout", 1.0) == 0.0
        ):
            attentions[layer] = _fast_attention(layer, attend)
    with replaced_calls(pools), replaced_calls(attentions, "_compute_attention"):
        yield
