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

`rule_for(layer)` finds a recurrent layer's rule: a layer that writes its
own (`supports_task_gradients`, like `keras_mtl.encoders.LSTMEncoder`), or a
rule for a Keras layer as its user wrote it (`keras.layers.LSTM`, the
seed's own, and `keras.layers.GRU`). The step uses them where the shared
encoder is made of such layers applied to the model's inputs
(`Split.kernel`), and autodiff elsewhere.

`KerasDense` works inside autodiff instead, for a plain `keras.layers.Dense`
anywhere in the encoder: `perturbed` makes each of its calls add a zero
perturbation to the pre-activation, whose cotangent per task is what the
rule needs (`Split.layer_rules`, `keras_mtl.training.rows.AutodiffRows`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


class KerasDense:
    """The rule of a plain `keras.layers.Dense`: each task's gradient of its
    weights from the layer's inputs X (rows R x F, every call's leading
    axes flattened and joined) and the task's cotangent D_t of its
    pre-activation output (R x U): X^T D_t for the kernel, the column sums
    of D_t for the bias.

    The Gramian of those rows needs neither: <X^T D_s, X^T D_t> is the sum
    of (X X^T) * (D_s D_t^T), R x R products instead of F x U rows per task
    where R < F. The layer-wise Gramian is the idea of torchjd's autogram
    engine (Quinton & Rey, "Jacobian Descent for Multi-Objective
    Optimization", 2024).

    Args:
        layer: The layer (`applies(layer)` holds).
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.variables = [layer.kernel] + ([layer.bias] if layer.use_bias else [])

    @staticmethod
    def applies(layer: Any) -> bool:
        return (
            type(layer) is keras.layers.Dense
            and layer.built
            and not layer.lora_enabled
            and layer.quantization_mode is None
            and layer.kernel.trainable
            and layer.kernel_regularizer is None
            and layer.bias_regularizer is None
            and layer.activity_regularizer is None
        )

    def call(
        self, inputs: Tensor, perturbation: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The layer's output and its pre-activation, plus `perturbation`
        (zeros whose cotangent is D_t)."""
        layer = self.layer
        pre = ops.matmul(inputs, layer.kernel)
        if layer.use_bias:
            pre = pre + layer.bias
        if perturbation is not None:
            pre = pre + perturbation
        out = layer.activation(pre) if layer.activation is not None else pre
        return out, pre

    def task_gradients(self, x: Tensor, d: Tensor) -> list[tuple[Any, Tensor]]:
        """Per-task gradients from X (R x F) and D (tasks, R, U)."""
        out = [(self.layer.kernel, _per_task_products(x, d))]
        if self.layer.use_bias:
            out.append((self.layer.bias, ops.sum(d, axis=1)))
        return out

    def gramian(self, x: Tensor, d: Tensor) -> Tensor:
        """The tasks' Gramian of this layer's weights, from X and D."""
        x = ops.cast(x, "float32")
        d = ops.cast(d, "float32")
        tasks, rows, units = d.shape
        features = x.shape[-1]
        if rows * rows * (features + tasks * units) < tasks * rows * features * units:
            products = ops.matmul(x, ops.transpose(x))
            mixed = ops.stack([ops.matmul(products, d[t]) for t in range(tasks)])
            g = ops.matmul(
                ops.reshape(mixed, (tasks, -1)),
                ops.transpose(ops.reshape(d, (tasks, -1))),
            )
        else:
            flat = ops.reshape(_per_task_products(x, d), (tasks, -1))
            g = ops.matmul(flat, ops.transpose(flat))
        if self.layer.use_bias:
            sums = ops.sum(d, axis=1)
            g = g + ops.matmul(sums, ops.transpose(sums))
        return g


def _per_task_products(x: Tensor, d: Tensor) -> Tensor:
    """X^T D_t for each task t: (tasks, F, U), one plain product per task."""
    xt = ops.transpose(x)
    return ops.stack([ops.matmul(xt, d[t]) for t in range(d.shape[0])])


@contextlib.contextmanager
def perturbed(
    rules: list[KerasDense], perturbations: list[Tensor] | None, calls: list
) -> Iterator[None]:
    """Within, each call of a ruled layer adds the next of `perturbations`
    (none when None) to its pre-activation and appends (rule, inputs,
    pre-activation) to `calls`."""

    def patched(rule: KerasDense) -> Any:
        def call(inputs: Tensor, training: Any = None) -> Tensor:
            index = len(calls)
            extra = None if perturbations is None else perturbations[index]
            out, pre = rule.call(inputs, extra)
            calls.append((rule, inputs, pre))
            return out

        return call

    for rule in rules:
        object.__setattr__(rule.layer, "call", patched(rule))
    try:
        yield
    finally:
        for rule in rules:
            rule.layer.__dict__.pop("call", None)


def rule_for(layer: Any) -> Any:
    """The per-task gradient rule of `layer`, or None without one."""
    if getattr(layer, "supports_task_gradients", False):
        return layer
    if KerasLSTM.applies(layer):
        return KerasLSTM(layer)
    if KerasGRU.applies(layer):
        return KerasGRU(layer)
    return None
