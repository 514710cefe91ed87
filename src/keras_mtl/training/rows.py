"""Task rows: the per-task gradients of the shared variables, by provider.

A balanced step needs, from the shared encoder, its representation Z and
two backward passes: `through(dz)`, one pass for one cotangent of Z (the
weighted update), and `jacobian(jz)`, one pass per task's cotangent (the
rows of the Jacobian). `AutodiffRows` gets them from the backend's VJP of
the encoder's stateless call, for any encoder; `KernelRows` from layers
that write their per-task backward pass out (`LSTMEncoder`). The step
takes whichever `rows_for` picks and never asks which.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

import keras
from keras import ops

from keras_mtl.models.sharing import Split

Tensor = Any


def input_value(model: Any, x: Any, tensor: Any) -> Tensor:
    """The batch's value for one of the model's input tensors."""
    if isinstance(x, dict):
        return x[tensor.name]
    flat = x if isinstance(x, list | tuple) else [x]
    index = [id(t) for t in model.inputs].index(id(tensor))
    return flat[index]


def heads_inputs(model: Any, split: Split, x: Any, z: list[Tensor]) -> list[Tensor]:
    """The heads model's inputs: Z, then the raw inputs heads read."""
    return list(z) + [input_value(model, x, t) for t in split.passthrough]


class AutodiffRows:
    """Task rows by autodiff: the VJP of the encoder's stateless call, one
    backward pass per cotangent, batched over the tasks' cotangents.

    Args:
        prims: The backend's primitives (`keras_mtl.backend.module()`).
        encoder: The shared encoder (a functional model).
        trainable: Its trainable variables' values for this step.
        non_trainable: Its non-trainable variables' values.
        x: The batch's inputs.
    """

    def __init__(
        self,
        prims: ModuleType,
        encoder: Any,
        trainable: list[Tensor],
        non_trainable: list[Tensor],
        x: Any,
    ) -> None:
        self.has_reg = False

        def forward(variables: list[Tensor]) -> tuple[Any, Any]:
            z, new_n, reg = encoder.stateless_call(
                variables, non_trainable, x, training=True, return_losses=True
            )
            self.has_reg = bool(reg)
            total = sum(reg) if reg else ops.zeros((), "float32")
            z = list(z) if isinstance(z, list | tuple) else [z]
            return (z, total), new_n

        (self.z, _), self.non_trainable, self.pullback = prims.vjp(forward, trainable)

    def through(self, dz: list[Tensor]) -> list[Tensor]:
        """One backward pass for cotangents dz of Z, layer losses included."""
        reg = ops.ones((), "float32") if self.has_reg else ops.zeros((), "float32")
        return self.pullback((list(dz), reg))

    def jacobian(self, jz: list[Tensor]) -> list[Tensor]:
        """Per-task gradients of the encoder's variables: one backward pass
        per row of the cotangents jz (pieces of shape (tasks, ...))."""
        rows = int(jz[0].shape[0])
        return self.pullback.batched((list(jz), ops.zeros((rows,), "float32")))

    def reg(self) -> list[Tensor] | None:
        """Gradients of the encoder's layer losses, or None without any."""
        if not self.has_reg:
            return None
        return self.pullback(([ops.zeros_like(t) for t in self.z], ops.ones(())))


class KernelRows:
    """Task rows through layer rules (see `Split.kernel` and
    `keras_mtl.models.rules`: `LSTMEncoder`, Keras's `LSTM`): the encoder's
    forward pass and per-task gradients written out, no autodiff through
    the encoder. Calls of one layer on inputs of one shape run as one batch.

    Every computation runs where the encoder's variables read `mapping`
    (their values for this step) and records no gradient.
    """

    def __init__(
        self, prims: ModuleType, model: Any, split: Split, x: Any, mapping: list
    ) -> None:
        self.prims = prims
        self.mapping = mapping
        with self._scope():
            self._forward(model, split, x)

    def _scope(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(keras.StatelessScope(state_mapping=self.mapping))
        stack.enter_context(self.prims.no_grad())
        return stack

    def _forward(self, model: Any, split: Split, x: Any) -> None:
        self.split = split
        self.non_trainable = [v.value for v in split.encoder.non_trainable_variables]
        values = [input_value(model, x, t) for _, t in split.kernel]
        # Group the calls of each layer whose inputs share a shape.
        groups: dict[tuple, list[int]] = {}
        for i, ((rule, _), value) in enumerate(zip(split.kernel, values, strict=True)):
            groups.setdefault((id(rule), tuple(value.shape[1:])), []).append(i)
        self.groups = []
        self.z: list[Tensor] = [None] * len(values)
        for members in groups.values():
            rule = split.kernel[members[0]][0]
            sizes = [ops.shape(values[i])[0] for i in members]
            joined = (
                values[members[0]]
                if len(members) == 1
                else ops.concatenate([values[i] for i in members], axis=0)
            )
            h, residual = rule.forward_saving(joined)
            start = 0
            for i, size in zip(members, sizes, strict=True):
                self.z[i] = h[start : start + size] if len(members) > 1 else h
                start += size
            self.groups.append((rule, members, joined, residual))

    def jacobian(self, jz: list[Tensor]) -> list[Tensor]:
        """Per-task gradients of the encoder's variables, in its order."""
        with self._scope():
            return self._jacobian(jz)

    def _jacobian(self, jz: list[Tensor]) -> list[Tensor]:
        total: dict[int, Tensor] = {}
        for rule, members, joined, residual in self.groups:
            cot = (
                jz[members[0]]
                if len(members) == 1
                else ops.concatenate([jz[i] for i in members], axis=1)
            )
            for var, grad in rule.task_gradients(joined, residual, cot):
                total[id(var)] = grad if id(var) not in total else total[id(var)] + grad
        k = jz[0].shape[0]
        return [
            total.get(id(v), ops.zeros((k, *v.shape), dtype=v.dtype))
            for v in self.split.encoder.trainable_variables
        ]

    def through(self, dz: list[Tensor]) -> list[Tensor]:
        """One backward pass: the gradients for cotangents dz."""
        return [g[0] for g in self.jacobian([ops.expand_dims(d, 0) for d in dz])]

    def reg(self) -> None:
        """Kernel layers add no layer losses."""
        return None


def rows_for(
    prims: ModuleType,
    model: Any,
    split: Split,
    trainable: list[Tensor],
    non_trainable: list[Tensor],
    x: Any,
) -> AutodiffRows | KernelRows:
    """The task-row provider of a split model: its layers' own kernels when
    every shared variable has one, else autodiff."""
    if split.kernel is None:
        return AutodiffRows(prims, split.encoder, trainable, non_trainable, x)
    encoder = split.encoder
    mapping = list(zip(encoder.trainable_variables, trainable, strict=True))
    mapping += list(zip(encoder.non_trainable_variables, non_trainable, strict=True))
    return KernelRows(prims, model, split, x, mapping)
