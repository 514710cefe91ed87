"""Recurrent encoders: LSTM (the seed's) and GRU."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_mtl.encoders import lstm_kernels
from keras_mtl.encoders.base import SequenceEncoder, Tensor


class _Recurrent(SequenceEncoder):
    layer_class: type = keras.layers.LSTM

    def __init__(
        self,
        units: int = 64,
        dropout: float = 0.0,
        skip_padding: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.dropout = float(dropout)
        self.skip_padding = bool(skip_padding)
        self.rnn = self.layer_class(self.units, dropout=self.dropout, name="rnn")

    def build_body(self, sequence_shape: tuple) -> None:
        self.rnn.build(sequence_shape)

    def padding_mask(self, inputs: Tensor) -> Tensor | None:
        """(batch, time): False for the leading padding (the steps before a
        text's first symbol: id > 0, or a non-zero feature row), True after;
        None without `skip_padding`."""
        if not self.skip_padding:
            return None
        if self.symbols is None:
            real = ops.any(ops.not_equal(inputs, 0), axis=-1)
        else:
            real = ops.cast(inputs, "int32") > 0
        return ops.cumsum(ops.cast(real, "int32"), axis=1) > 0

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        sequence = inputs if self.symbol_layer is None else self.symbol_layer(inputs)
        return self.rnn(sequence, mask=self.padding_mask(inputs), training=training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "dropout": self.dropout,
            "skip_padding": self.skip_padding,
        }


@keras.saving.register_keras_serializable(package="keras_mtl")
class LSTMEncoder(_Recurrent):
    """An LSTM's last state (Hochreiter & Schmidhuber 1997); the seed's encoder.

    `LSTMEncoder(64, symbols="onehot")` on 280 byte ids has the seed's
    LSTM(64) weights (82,176 parameters) and gives its outputs.

    Args:
        units: Width of the state and of the encoding.
        dropout: Input dropout.
        skip_padding: The leading padding of a pre-padded text (ids 0, or
            all-zero rows, before its first symbol) leaves the state at zero,
            so a text's encoding does not depend on how much padding it has:
            what length-bucketed batches need (`keras_mtl.data.BucketedBatches`).
            Off by default: the seed's LSTM runs over its padding. (Inside
            the recurrence this closes the input gate on those steps, which
            keeps a zero state at zero exactly and costs one addition.)
        **kwargs: `symbols`, `vocab_size`, `embedding_dim` (see
            `SequenceEncoder`) and Keras layer arguments.

    Example:
    >>> import numpy as np
    >>> LSTMEncoder(8, symbols="onehot")(np.ones((2, 5), "uint8")).shape
    (2, 8)
    """

    layer_class = keras.layers.LSTM

    def _projected(self, inputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """x_t W + b for every step, and the float sequence x (None for
        one-hot ids, where x W is a row lookup of W: one_hot(ids) W = W[ids],
        instead of a 256-wide product per step)."""
        cell = self.rnn.cell
        started = self.padding_mask(inputs)
        # Input gate shut (sigmoid(-1e4) = 0) on leading padding: from the
        # zero state, c and h stay exactly 0, and every gradient through the
        # step is 0.
        shut = ops.concatenate(
            [ops.full((1, self.units), -1e4), ops.zeros((1, 3 * self.units))],
            axis=-1,
        )
        shut = ops.cast(shut, cell.kernel.dtype)
        if self.symbols == "onehot":
            # Rows of [0; W[1:]; shut]: id 0 is a zero one-hot row, and
            # leading padding reads the shut row (one lookup, no masks).
            ids = ops.cast(inputs, "int32")
            rows = [ops.zeros_like(cell.kernel[:1]), cell.kernel[1:]]
            if started is not None:
                rows.append(shut)
                ids = ops.where(started, ids, self.vocab_size)
            projected = ops.take(ops.concatenate(rows, axis=0), ids, axis=0)
            sequence = None
        else:
            sequence = (
                inputs if self.symbol_layer is None else self.symbol_layer(inputs)
            )
            projected = ops.matmul(sequence, cell.kernel)
            if started is not None:
                pad = 1.0 - ops.cast(ops.expand_dims(started, -1), projected.dtype)
                projected = projected + pad * shut
        if cell.use_bias:
            projected = projected + cell.bias
        return projected, sequence

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if training and self.dropout > 0:
            return super().call(inputs, training=training)
        # keras.layers.LSTM's numbers, with the input projections computed
        # before the recurrence.
        projected, _ = self._projected(inputs)
        return lstm_kernels.forward(
            projected, self.rnn.cell.recurrent_kernel, self.units
        )[0]

    # Per-task gradients for balancing methods (see `lstm_kernels`).

    @property
    def supports_task_gradients(self) -> bool:
        return self.dropout == 0 and not self.losses

    def forward_saving(self, inputs: Tensor) -> tuple[Tensor, Any]:
        """The encoding, and what `task_gradients` needs."""
        projected, sequence = self._projected(inputs)
        h, saved = lstm_kernels.forward(
            projected, self.rnn.cell.recurrent_kernel, self.units, save=True
        )
        return h, (saved, sequence)

    def task_gradients(
        self, inputs: Tensor, residuals: Any, cotangents: Tensor
    ) -> list[tuple[Any, Tensor]]:
        """Each task's gradient of this layer's weights.

        Args:
            inputs: The layer's input in `forward_saving`.
            residuals: What `forward_saving` returned beside the encoding.
            cotangents: Each task's gradient of the encoding, (tasks, batch,
                units).

        Returns:
            (variable, gradient of shape (tasks, *variable shape)) pairs.
        """
        saved, sequence = residuals
        cell = self.rnn.cell
        k = cotangents.shape[0]
        width = k * 4 * self.units
        if sequence is None:  # one-hot ids: W is read by row
            d_recurrent, d_bias, d_kernel = lstm_kernels.task_gradients(
                saved,
                cell.recurrent_kernel,
                cotangents,
                lstm_kernels.time_major(ops.cast(inputs, "float32")),
                lstm_kernels.lookup_absorb(self.vocab_size),
                ops.zeros((self.vocab_size, width)),
            )
            # Id 0 (padding, a zero one-hot row) reads no row of W.
            keep = ops.cast(ops.arange(self.vocab_size) > 0, d_kernel.dtype)
            d_kernel = d_kernel * ops.expand_dims(keep, -1)
            out = [(cell.kernel, lstm_kernels.by_task(d_kernel, k))]
        elif self.symbols != "embedding":
            d_recurrent, d_bias, d_kernel = lstm_kernels.sequence_gradients(
                saved, cell.recurrent_kernel, cotangents, sequence
            )
            out = [(cell.kernel, d_kernel)]
        else:
            d_recurrent, d_bias, (d_kernel, d_table) = self._embedding_gradients(
                saved, inputs, sequence, cotangents
            )
            out = [
                (self.symbol_layer.embeddings, d_table),
                (cell.kernel, d_kernel),
            ]
        out.append((cell.recurrent_kernel, d_recurrent))
        if cell.use_bias:
            out.append((cell.bias, d_bias))
        return out

    def _embedding_gradients(
        self, saved: Any, inputs: Tensor, sequence: Tensor, cotangents: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """Per-task gradients through an embedding: W from x_t^T dz_t, the
        table from dx_t = dz_t W^T scattered by id, step by step."""
        cell = self.rnn.cell
        k = cotangents.shape[0]
        units, dim = self.units, sequence.shape[-1]
        transposed = ops.transpose(cell.kernel)
        lookup = lstm_kernels.lookup_absorb(self.vocab_size)

        def absorb(total: tuple, rows: Tensor, extra: Tensor) -> tuple:
            d_kernel, d_table = total
            x = extra[:, :dim]
            dx = ops.matmul(ops.reshape(rows, (-1, k, 4 * units)), transposed)
            d_table = lookup(d_table, ops.reshape(dx, (-1, k * dim)), extra)
            return lstm_kernels.sequence_absorb(d_kernel, rows, x), d_table

        steps = ops.concatenate(
            [sequence, ops.expand_dims(ops.cast(inputs, sequence.dtype), -1)], -1
        )
        d_recurrent, d_bias, (d_kernel, d_table) = lstm_kernels.task_gradients(
            saved,
            cell.recurrent_kernel,
            cotangents,
            lstm_kernels.time_major(steps),
            absorb,
            (
                ops.zeros((dim, k * 4 * units)),
                ops.zeros((self.vocab_size, k * dim)),
            ),
        )
        return (
            d_recurrent,
            d_bias,
            (lstm_kernels.by_task(d_kernel, k), lstm_kernels.by_task(d_table, k)),
        )


@keras.saving.register_keras_serializable(package="keras_mtl")
class GRUEncoder(_Recurrent):
    """A GRU's last state (Cho et al. 2014, https://arxiv.org/abs/1406.1078).

    Args:
        units: Width of the state and of the encoding.
        dropout: Input dropout.
        skip_padding: Padding steps leave the state unchanged (see
            `LSTMEncoder`).
        **kwargs: See `SequenceEncoder`.
    """

    layer_class = keras.layers.GRU
