"""Recurrent encoders: LSTM (the seed's) and GRU."""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl.encoders.base import SequenceEncoder, Tensor


class _Recurrent(SequenceEncoder):
    layer_class: type = keras.layers.LSTM

    def __init__(self, units: int = 64, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.dropout = float(dropout)
        self.rnn = self.layer_class(self.units, dropout=self.dropout, name="rnn")

    def build_body(self, sequence_shape: tuple) -> None:
        self.rnn.build(sequence_shape)

    def encode(self, sequence: Tensor, training: bool | None = None) -> Tensor:
        return self.rnn(sequence, training=training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="keras_mtl")
class LSTMEncoder(_Recurrent):
    """An LSTM's last state (Hochreiter & Schmidhuber 1997); the seed's encoder.

    `LSTMEncoder(64, symbols="onehot")` on 280 byte ids has the seed's
    LSTM(64) weights (82,176 parameters) and gives its outputs.

    Args:
        units: Width of the state and of the encoding.
        dropout: Input dropout.
        **kwargs: `symbols`, `vocab_size`, `embedding_dim` (see
            `SequenceEncoder`) and Keras layer arguments.

    Example:
    >>> import numpy as np
    >>> LSTMEncoder(8, symbols="onehot")(np.ones((2, 5), "uint8")).shape
    (2, 8)
    """

    layer_class = keras.layers.LSTM


@keras.saving.register_keras_serializable(package="keras_mtl")
class GRUEncoder(_Recurrent):
    """A GRU's last state (Cho et al. 2014, https://arxiv.org/abs/1406.1078).

    Args:
        units: Width of the state and of the encoding.
        dropout: Input dropout.
        **kwargs: See `SequenceEncoder`.
    """

    layer_class = keras.layers.GRU
