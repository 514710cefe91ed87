"""A user's own stack of Keras layers, described as layer configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

Tensor = Any


def _layer(spec: Any, position: int) -> keras.layers.Layer:
    """One layer from `{"class_name": ..., "config": {...}}` or the short
    form `{"class_name": ..., <config keys>}`, in Keras safe mode."""
    if not isinstance(spec, Mapping) or "class_name" not in spec:
        raise ValueError(
            f"LayerStack: layer {position + 1} must be a table with class_name, "
            f"got {spec!r}."
        )
    spec = dict(spec)
    config = spec.pop("config", None)
    if config is None:
        config = {
            k: v for k, v in spec.items() if k not in ("module", "registered_name")
        }
        config.pop("class_name")
    full = {"class_name": spec["class_name"], "config": dict(config)}
    for key in ("module", "registered_name"):
        if key in spec:
            full[key] = spec[key]
    # A bare class name means a built-in Keras layer.
    full.setdefault("module", "keras.layers")
    try:
        # Safe mode: a config names classes only; lambdas and arbitrary code
        # are refused, so reading a config never runs code.
        layer = keras.saving.deserialize_keras_object(full, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - reported in one sentence
        message = " ".join(str(error).split())
        raise ValueError(
            f"LayerStack: layer {position + 1} ({spec['class_name']}) cannot be "
            f"built from its config: {message}"
        ) from None
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(
            f"LayerStack: layer {position + 1} ({spec['class_name']}) is not a "
            "Keras layer."
        )
    return layer


@keras.saving.register_keras_serializable(package="keras_mtl")
class LayerStack(keras.layers.Layer):
    """A user's own encoder: Keras layers applied in order, each given as
    its Keras config (what `layer.get_config()` gives), deserialised in
    Keras safe mode, so that a config file can describe any stack of
    built-in (or registered) layers without running code.

    Args:
        layers: Layer configs: `{"class_name": "Conv2D", "config": {...}}`,
            or the short form `{"class_name": "Conv2D", "filters": 16, ...}`.

    Example:
    >>> import numpy as np
    >>> stack = LayerStack([{"class_name": "Flatten"},
    ...                     {"class_name": "Dense", "units": 4}])
    >>> stack(np.ones((2, 3, 3), "float32")).shape
    (2, 4)
    """

    def __init__(self, layers: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layers, str | bytes) or not layers:
            raise ValueError(
                f"LayerStack: layers must be a non-empty list of layer configs, "
                f"got {layers!r}."
            )
        self.stack = [_layer(spec, i) for i, spec in enumerate(layers)]

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for layer in self.stack:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = inputs
        for layer in self.stack:
            x = layer(x, training=training) if _takes_training(layer) else layer(x)
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        for layer in self.stack:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(x) for x in self.stack],
        }


def _takes_training(layer: keras.layers.Layer) -> bool:
    import inspect

    return "training" in inspect.signature(layer.call).parameters
