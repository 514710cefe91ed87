"""Ready-made shared encoders. Any Keras layer can serve as an encoder too."""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl.encoders.base import SequenceEncoder
from keras_mtl.encoders.conv1d import Conv1DEncoder
from keras_mtl.encoders.conv2d import Conv2DEncoder
from keras_mtl.encoders.mlp import MLPEncoder
from keras_mtl.encoders.ngrams import NgramEncoder
from keras_mtl.encoders.recurrent import GRUEncoder, LSTMEncoder
from keras_mtl.encoders.stack import LayerStack
from keras_mtl.encoders.transformer import TransformerEncoder
from keras_mtl.registry import lookup

ENCODERS: dict[str, type[keras.layers.Layer]] = {
    "ngrams": NgramEncoder,
    "lstm": LSTMEncoder,
    "gru": GRUEncoder,
    "conv1d": Conv1DEncoder,
    "transformer": TransformerEncoder,
    "conv2d": Conv2DEncoder,
    "mlp": MLPEncoder,
    "layers": LayerStack,
}


def get(encoder: str | keras.layers.Layer, **kwargs: Any) -> keras.layers.Layer:
    """Returns an encoder layer by name (`"ngrams"`, `"lstm"`, `"gru"`,
    `"conv1d"`, `"transformer"`, `"conv2d"`, `"mlp"`, `"layers"`) with
    `kwargs`, or the given layer itself."""
    return lookup("encoder", encoder, ENCODERS, keras.layers.Layer, **kwargs)


__all__ = [
    "ENCODERS",
    "Conv1DEncoder",
    "Conv2DEncoder",
    "GRUEncoder",
    "LSTMEncoder",
    "LayerStack",
    "MLPEncoder",
    "NgramEncoder",
    "SequenceEncoder",
    "TransformerEncoder",
    "get",
]
