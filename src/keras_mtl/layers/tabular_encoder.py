"""The encoder of tabular inputs: embeddings and normalised numbers side by side."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_mtl.data.tabular import NUMERIC_INPUT, FeatureSpec

Tensor = Any


@keras.saving.register_keras_serializable(package="keras_mtl")
class TabularEncoder(keras.layers.Layer):
    """Concatenates the normalised numeric columns with one learned embedding
    per categorical column (row 0 of each table is the out-of-vocabulary
    bucket). Reads all the model's inputs at once (`FeatureSpec.inputs()`).

    Args:
        spec: The `FeatureSpec` (or its config) the inputs were encoded with.

    Example:
    >>> import pandas as pd
    >>> from keras_mtl.data.tabular import FeatureSpec
    >>> spec = FeatureSpec.from_frame(pd.DataFrame({"x": [1.0, 3.0], "c": ["a", "b"]}))
    >>> enc = TabularEncoder(spec)
    >>> enc(spec.encode(pd.DataFrame({"x": [2.0], "c": ["z"]})).inputs).shape
    (1, 9)
    """

    #: `build_model` calls it once with every input.
    joint_inputs = True

    def __init__(self, spec: FeatureSpec | dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = (
            spec if isinstance(spec, FeatureSpec) else FeatureSpec.from_config(spec)
        )
        self.embeddings = [
            keras.layers.Embedding(
                len(c.vocabulary) + 1, c.embedding_dim, name=f"embedding_{c.input}"
            )
            for c in self.spec.categorical
        ]

    def build(self, input_shape: Any) -> None:
        for embedding in self.embeddings:
            embedding.build((None,))

    def call(self, inputs: dict[str, Tensor]) -> Tensor:
        parts = [ops.cast(inputs[NUMERIC_INPUT], self.compute_dtype)]
        for column, embedding in zip(
            self.spec.categorical, self.embeddings, strict=True
        ):
            parts.append(embedding(ops.cast(inputs[column.input], "int32")))
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        width = len(self.spec.numeric) + sum(
            c.embedding_dim for c in self.spec.categorical
        )
        return (input_shape[NUMERIC_INPUT][0], width)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "spec": self.spec.get_config()}
