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


class KerasRecurrent:
    """A rule for a Keras recurrent layer returning its last state, with
    Keras's default activations (tanh, sigmoid gates) and no dropout,
    forward in time, no state carried between batches and no layer losses.

    Args:
        layer: The layer (`applies(layer)` holds).
    """

    layer_class: type = keras.layers.RNN

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    @classmethod
    def applies(cls, layer: Any) -> bool:
        if type(layer) is not cls.layer_class:
            return False
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


class KerasLSTM(KerasRecurrent):
    """The rule of a plain `keras.layers.LSTM` (the recurrence of
    `lstm_kernels`, which computes Keras's numbers)."""

    layer_class = keras.layers.LSTM

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


class KerasGRU(KerasRecurrent):
    """The rule of a plain `keras.layers.GRU` in Keras's default convention
    (`reset_after=True`; the recurrence of `gru_kernels`)."""

    layer_class = keras.layers.GRU

    @classmethod
    def applies(cls, layer: Any) -> bool:
        return super().applies(layer) and bool(layer.cell.reset_after)

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
