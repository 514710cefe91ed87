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

from keras_mtl.models.rules import InsideRule, perturbed, zero_perturbations
from keras_mtl.models.sharing import Split
from keras_mtl.training.algebra import combine, gramian, plus

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


class Rows:
    """What every task-row provider offers besides its passes: the tasks'
    Gramian of the shared variables and the update for given task weights."""

    def gramian_rows(self, jz: list[Tensor]) -> tuple[Tensor, Any]:
        """(G, update): the Gramian of the shared variables' task rows for
        the cotangents jz, and `update(weights)`, the gradients of the
        shared variables (layer losses included) for the weighted sum of the
        tasks. By default from the rows themselves."""
        pieces = self.jacobian(jz)
        return gramian(pieces), lambda w: plus(combine(w, pieces), self.reg())

    def jacobian(self, jz: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def through(self, dz: list[Tensor], reg: float = 1.0) -> list[Tensor]:
        raise NotImplementedError

    def reg(self) -> list[Tensor] | None:
        raise NotImplementedError


class AutodiffRows(Rows):
    """Task rows by autodiff: the VJP of the encoder's stateless call, one
    backward pass per cotangent, batched over the tasks' cotangents.

    With layer rules (`Split.layer_rules`: `keras_mtl.models.rules`'s rules
    of Keras's `Dense`, `EinsumDense` and `Embedding`) the VJP stops at the
    ruled layers' weights: each call of a ruled layer
    adds a zero perturbation to its pre-activation, whose cotangent per task
    is all the rule needs, and its weights' rows, their Gramian and the
    update come from the rule. A Gramian method then never holds those
    weights' rows (docs/benchmarks.md). Rules need shapes known where the
    step is traced (`STATIC_SHAPES`, JAX): a forward pass run only for the
    perturbations' shapes, whose results nothing uses, costs nothing there.

    Args:
        prims: The backend's primitives (`keras_mtl.backend.module()`).
        encoder: The shared encoder (a functional model).
        trainable: Its trainable variables' values for this step.
        non_trainable: Its non-trainable variables' values.
        x: The batch's inputs.
        rules: Rules of the encoder's layers (none by default).
    """

    def __init__(
        self,
        prims: ModuleType,
        encoder: Any,
        trainable: list[Tensor],
        non_trainable: list[Tensor],
        x: Any,
        rules: list[InsideRule] | None = None,
    ) -> None:
        self.has_reg = False
        self.rules = list(rules or [])
        ruled = {id(v) for rule in self.rules for v in rule.variables}
        self.variables = encoder.trainable_variables
        self.free = [i for i, v in enumerate(self.variables) if id(v) not in ruled]

        def run(free: list[Tensor], extra: list[Tensor] | None, calls: list) -> Any:
            values = list(trainable)
            for i, value in zip(self.free, free, strict=True):
                values[i] = value
            with perturbed(self.rules, extra, calls):
                z, new_n, reg = encoder.stateless_call(
                    values, non_trainable, x, training=True, return_losses=True
                )
            self.has_reg = bool(reg)
            total = sum(reg) if reg else ops.zeros((), "float32")
            z = list(z) if isinstance(z, list | tuple) else [z]
            return (z, total), new_n

        free = [trainable[i] for i in self.free]
        probe: list = []
        if self.rules:
            run(free, None, probe)
        self.calls = [rule for rule, _, _ in probe]
        extra = zero_perturbations(probe)

        def forward(primals: list[Any]) -> tuple[Any, Any]:
            calls: list = []
            out, new_n = run(*primals, calls)
            return out, (new_n, [inputs for _, inputs, _ in calls])

        (self.z, _), aux, self.pullback = prims.vjp(forward, [free, extra])
        self.non_trainable, self.inputs = aux

    def _ruled(
        self, cotangents: list[Any], reduced: frozenset = frozenset()
    ) -> list[tuple[Any, Any, Any]]:
        """(rule, X, D) per ruled layer from the perturbations' cotangents
        (each with a leading task axis): its calls' inputs and cotangents,
        leading axes flattened into rows and joined. For the rules in
        `reduced` (by id), whose tasks' passes reduced their cotangents
        (`InsideRule.reduce`), (rule, None, shares): the shares summed over
        the calls."""
        by_rule: dict[int, tuple[Any, list, list]] = {}
        for rule, inputs, cot in zip(self.calls, self.inputs, cotangents, strict=True):
            entry = by_rule.setdefault(id(rule), (rule, [], []))
            if id(rule) in reduced:
                entry[2].append(cot)
                continue
            entry[1].append(rule.rows(inputs))
            entry[2].append(rule.cotangent_rows(cot))
        return [
            (rule, None, _summed(ds))
            if id(rule) in reduced
            else (rule, rule.join(xs), _joined(ds, 1))
            for rule, xs, ds in by_rule.values()
        ]

    def _assemble(self, free: list[Tensor], ruled: dict[int, Tensor]) -> list[Tensor]:
        out = [None] * len(self.variables)
        for i, value in zip(self.free, free, strict=True):
            out[i] = value
        for i, v in enumerate(self.variables):
            if id(v) in ruled:
                out[i] = ruled[id(v)]
        return out

    def _pass(self, dz: list[Tensor], reg: Tensor) -> list[Tensor]:
        free, cots = self.pullback((list(dz), reg))
        parts = self._ruled([ops.expand_dims(c, 0) for c in cots])
        ruled = {
            id(v): g[0] for rule, x, d in parts for v, g in rule.task_gradients(x, d)
        }
        return self._assemble(free, ruled)

    def through(self, dz: list[Tensor], reg: float = 1.0) -> list[Tensor]:
        """One backward pass for cotangents dz of Z, the layer losses
        included with factor `reg`."""
        factor = reg if self.has_reg else 0.0
        return self._pass(dz, ops.full((), factor, "float32"))

    def _batched(self, jz: list[Tensor]) -> tuple[list[Tensor], list]:
        """One backward pass per task; a ruled layer whose rule reduces
        (`InsideRule.reduces`) gets each task's shares inside its pass."""
        tasks = int(jz[0].shape[0])
        saved: dict[int, tuple[Any, list]] = {}
        for rule, inputs in zip(self.calls, self.inputs, strict=True):
            saved.setdefault(id(rule), (rule, []))[1].append(inputs)
        reduced = frozenset(
            key for key, (rule, calls) in saved.items() if rule.reduces(calls, tasks)
        )

        def reduce(out: Any) -> Any:
            free, cots = out
            return free, [
                rule.reduce(rule.rows(inputs), rule.cotangent_rows(cot[None])[0])
                if id(rule) in reduced
                else cot
                for rule, inputs, cot in zip(self.calls, self.inputs, cots, strict=True)
            ]

        free, cots = self.pullback.batched(
            (list(jz), ops.zeros((tasks,), "float32")),
            reduce=reduce if reduced else None,
        )
        return free, self._ruled(cots, reduced)

    def jacobian(self, jz: list[Tensor]) -> list[Tensor]:
        """Per-task gradients of the encoder's variables: one backward pass
        per row of the cotangents jz (pieces of shape (tasks, ...))."""
        free, parts = self._batched(jz)
        ruled = {
            id(v): g
            for rule, x, d in parts
            for v, g in (
                rule.task_gradients(x, d)
                if x is not None
                else rule.reduced_task_gradients(d)
            )
        }
        return self._assemble(free, ruled)

    def gramian_rows(self, jz: list[Tensor]) -> tuple[Tensor, Any]:
        """The Gramian layer by layer where rules apply (see `Rows`)."""
        if not self.rules:
            return super().gramian_rows(jz)
        free, parts = self._batched(jz)
        pairs = [
            rule.gramian_update(x, d)
            if x is not None
            else rule.reduced_gramian_update(d)
            for rule, x, d in parts
        ]
        g = sum(part for part, _ in pairs)
        if free:
            g = g + gramian(free)

        def update(weights: Tensor) -> list[Tensor]:
            ruled = {id(v): grad for _, up in pairs for v, grad in up(weights)}
            return plus(self._assemble(combine(weights, free), ruled), self.reg())

        return g, update

    def reg(self) -> list[Tensor] | None:
        """Gradients of the encoder's layer losses, or None without any."""
        if not self.has_reg:
            return None
        return self._pass([ops.zeros_like(t) for t in self.z], ops.ones(()))


def _joined(parts: list[Tensor], axis: int) -> Tensor:
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=axis)


def _summed(shares: list[tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """The tasks' shares of a layer's calls, summed over the calls."""
    return tuple(sum(parts[1:], parts[0]) for parts in zip(*shares, strict=True))


class KernelRows(Rows):
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

    def through(self, dz: list[Tensor], reg: float = 1.0) -> list[Tensor]:
        """One backward pass: the gradients for cotangents dz (no layer
        losses, whatever `reg`)."""
        del reg
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
        rules = split.layer_rules if getattr(prims, "STATIC_SHAPES", False) else None
        return AutodiffRows(prims, split.encoder, trainable, non_trainable, x, rules)
    encoder = split.encoder
    mapping = list(zip(encoder.trainable_variables, trainable, strict=True))
    mapping += list(zip(encoder.non_trainable_variables, non_trainable, strict=True))
    return KernelRows(prims, model, split, x, mapping)
