"""Layer rules: per-task gradients of one layer's weights, written out.

A balanced step needs each task's gradient of the shared weights. Autodiff
gets them with one backward pass per task; a *rule* gets them for all tasks
at once from what the layer's forward pass saved and each task's gradient of
the layer's output. A rule has two methods:

* `forward_saving(inputs) -> (output, residual)`: the layer's output and
  what the backward pass needs;
* `task_gradients(inputs, residual, cotangents) -> [(variable, gradient)]`:
  with `cotangents` of shape (tasks, *output shape), each weight's gradient
  of shape (tasks, *weight shape).

`rule_for(layer)` finds a layer's rule: a layer that writes its own
(`supports_task_gradients`, like `keras_mtl.encoders.LSTMEncoder`), or a
rule for a Keras layer as its user wrote it (`keras.layers.LSTM`, the
seed's own, and `keras.layers.GRU`). The step uses a rule where the shared encoder is made of
layers with rules applied to the model's inputs (`Split.kernel`), and
autodiff elsewhere.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_mtl.encoders import gru_kernels, lstm_kernels

Tensor = Any


class KerasLSTM:
    """The rule of a `keras.layers.LSTM` returning its last state, with
    Keras's default activations and no dropout (`_plain_recurrent`; the
    recurrence of `lstm_kernels`, which computes Keras's numbers).

    Args:
        layer: The LSTM layer (`KerasLSTM.applies(layer)` holds).
    """

    def __init__(self, layer: keras.layers.LSTM) -> None:
        self.layer = layer

    @staticmethod
    def applies(layer: Any) -> bool:
        return type(layer) is keras.layers.LSTM and _plain_recurrent(layer)

    def forward_saving(self, inputs: Tensor) -> tuple[Tensor, Any]:
        cell = self.layer.cell
        sequence = ops.cast(inputs, cell.kernel.dtype)
        projected = ops.matmul(sequence, cell.kernel)
        if cell.use_bias:
            projected = projected + cell.bias
        h, saved = lstm_kernels.forward(
            projected, cell.recurrent_kernel, cell.units, save=True
        )
        return h, (saved, sequence)

    def task_gradients(
        self, inputs: Tensor, residual: Any, cotangents: Tensor
    ) -> list[tuple[Any, Tensor]]:
        saved, sequence = residual
        cell = self.layer.cell
        d_recurrent, d_bias, d_kernel = lstm_kernels.sequence_gradients(
            saved, cell.recurrent_kernel, cotangents, sequence
        )
        out = [(cell.kernel, d_kernel), (cell.recurrent_kernel, d_recurrent)]
        if cell.use_bias:
            out.append((cell.bias, d_bias))
        return out


def _plain_recurrent(layer: Any) -> bool:
    """A recurrent layer with Keras's default activations and no dropout,
    forward in time, last state only, no state carried between batches, no
    layer losses."""
    cell = layer.cell
    return (
        cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and not (layer.return_sequences or layer.return_state)
        and not (layer.go_backwards or layer.stateful)
        and cell.dropout == 0
        and cell.recurrent_dropout == 0
        and not layer.losses
        and layer.activity_regularizer is None
    )


class KerasGRU:
    """The rule of a `keras.layers.GRU` returning its last state, in Keras's
    default convention (`reset_after=True`), with Keras's default
    activations and no dropout (`gru_kernels`).

    Args:
        layer: The GRU layer (`KerasGRU.applies(layer)` holds).
    """

    def __init__(self, layer: keras.layers.GRU) -> None:
        self.layer = layer

    @staticmethod
    def applies(layer: Any) -> bool:
        return (
            type(layer) is keras.layers.GRU
            and layer.cell.reset_after
            and _plain_recurrent(layer)
        )

    def _biases(self) -> tuple[Tensor | None, Tensor | None]:
        cell = self.layer.cell
        if not cell.use_bias:
            return None, None
        return cell.bias[0], cell.bias[1]

    def forward_saving(self, inputs: Tensor) -> tuple[Tensor, Any]:
        cell = self.layer.cell
        sequence = ops.cast(inputs, cell.kernel.dtype)
        projected = ops.matmul(sequence, cell.kernel)
        input_bias, recurrent_bias = self._biases()
        if input_bias is not None:
            projected = projected + input_bias
        h, saved = gru_kernels.forward(
            projected, cell.recurrent_kernel, recurrent_bias, cell.units, save=True
        )
        return h, (saved, sequence)

    def task_gradients(
        self, inputs: Tensor, residual: Any, cotangents: Tensor
    ) -> list[tuple[Any, Tensor]]:
        saved, sequence = residual
        cell = self.layer.cell
        k = cotangents.shape[0]
        d_recurrent, d_rbias, d_ibias, d_kernel = gru_kernels.task_gradients(
            saved,
            cell.recurrent_kernel,
            cotangents,
            lstm_kernels.time_major(sequence),
            lstm_kernels.sequence_absorb,
            ops.zeros((sequence.shape[-1], k * 3 * cell.units), sequence.dtype),
        )
        out = [
            (cell.kernel, lstm_kernels.by_task(d_kernel, k)),
            (cell.recurrent_kernel, d_recurrent),
        ]
        if cell.use_bias:
            out.append((cell.bias, ops.stack([d_ibias, d_rbias], axis=1)))
        return out


def rule_for(layer: Any) -> Any:
    """The per-task gradient rule of `layer`, or None without one."""
    if getattr(layer, "supports_task_gradients", False):
        return layer
    if KerasLSTM.applies(layer):
        return KerasLSTM(layer)
    if KerasGRU.applies(layer):
        return KerasGRU(layer)
    return None
