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
import math
from typing import Any

import keras
from keras import ops

from keras_mtl.encoders import gru_kernels, lstm_kernels
from keras_mtl.models.calls import replaced_calls

Tensor = Any


class KerasRecurrent:
    """A rule for a Keras recurrent layer returning its last state, with
    Keras's default activations (tanh, sigmoid gates) and no dropout,
    forward in time, no state carried between batches and no layer losses.

    Over exactly one-hot input (the seed's tweets, 280 x 256), checked on
    each batch's data, the input kernel's rows are read and its gradients
    summed by id instead of multiplied (`lstm_kernels.project`,
    `kernel_gradient`, `one_hot_absorb`): the seed's model as written takes
    0.15 s a 2-task UPGrad step instead of 0.18 s (docs/benchmarks.md).

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
        one_hot = lstm_kernels.is_one_hot(sequence)
        projected = lstm_kernels.project(sequence, cell.kernel, one_hot)
        if cell.use_bias:
            projected = projected + cell.bias
        h, saved = lstm_kernels.forward(
            projected, cell.recurrent_kernel, cell.units, save=True
        )
        return h, (saved, sequence, one_hot)

    def task_gradients(
        self, inputs: Tensor, residual: Any, cotangents: Tensor
    ) -> list[tuple[Any, Tensor]]:
        saved, sequence, one_hot = residual
        cell = self.layer.cell
        d_recurrent, d_bias, d_kernel = lstm_kernels.sequence_gradients(
            saved, cell.recurrent_kernel, cotangents, sequence, one_hot
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
        one_hot = lstm_kernels.is_one_hot(sequence)
        projected = lstm_kernels.project(sequence, cell.kernel, one_hot)
        input_bias, recurrent_bias = self._biases()
        if input_bias is not None:
            projected = projected + input_bias
        h, saved = gru_kernels.forward(
            projected, cell.recurrent_kernel, recurrent_bias, cell.units, save=True
        )
        return h, (saved, sequence, one_hot)

    def task_gradients(
        self, inputs: Tensor, residual: Any, cotangents: Tensor
    ) -> list[tuple[Any, Tensor]]:
        saved, sequence, one_hot = residual
        cell = self.layer.cell
        k = cotangents.shape[0]
        d_recurrent, d_rbias, d_ibias, d_kernel = gru_kernels.task_gradients(
            saved,
            cell.recurrent_kernel,
            cotangents,
            lstm_kernels.time_major(sequence),
            lstm_kernels.one_hot_absorb(one_hot),
            ops.zeros((sequence.shape[-1], k * 3 * cell.units), sequence.dtype),
        )
        out = [
            (cell.kernel, lstm_kernels.by_task(d_kernel, k)),
            (cell.recurrent_kernel, d_recurrent),
        ]
        if cell.use_bias:
            out.append((cell.bias, ops.stack([d_ibias, d_rbias], axis=1)))
        return out


class InsideRule:
    """A rule that works inside autodiff (see the module's docstring): the
    layer's call with a zero perturbation of its pre-activation, then from
    the rows X of the layer's inputs (every call's leading axes flattened
    and joined) and each task's cotangent D_t of the pre-activation
    (tasks, R, U), the tasks' weight gradients, their Gramian and the
    gradient of a weighted sum of the tasks.

    Subclasses say which layers they serve (`applies`), how the layer
    computes its pre-activation (`pre_activation`) and how its inputs and
    cotangents become rows (`rows`, `cotangent_rows`).

    Args:
        layer: The layer (`applies(layer)` holds).
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.variables: list[Any] = []

    @staticmethod
    def applies(layer: Any) -> bool:
        raise NotImplementedError

    def pre_activation(self, inputs: Tensor) -> Tensor:
        raise NotImplementedError

    def activation(self, pre: Tensor) -> Tensor:
        return pre

    def call(
        self, inputs: Tensor, perturbation: Tensor | None, training: Any = None
    ) -> tuple[Tensor, Tensor, Any]:
        """(output, pre-activation, saved): the layer's output, its
        pre-activation plus `perturbation` (zeros whose cotangent is D_t),
        and what `rows` needs of this call (by default its inputs)."""
        del training
        pre = self.pre_activation(inputs)
        if perturbation is not None:
            pre = pre + perturbation
        return self.activation(pre), pre, inputs

    def rows(self, saved: Any) -> Any:
        """X, the rows of one call's inputs, from what the call saved."""
        raise NotImplementedError

    def join(self, rows: list[Any]) -> Any:
        """The rows of several calls as one X."""
        return rows[0] if len(rows) == 1 else ops.concatenate(rows, axis=0)

    def cotangent_rows(self, cotangents: Tensor) -> Tensor:
        """(tasks, R, U) from cotangents of shape (tasks, *pre-activation)."""
        return ops.reshape(cotangents, (cotangents.shape[0], -1, cotangents.shape[-1]))

    def task_gradients(self, x: Tensor, d: Tensor) -> list[tuple[Any, Tensor]]:
        """Each weight's per-task gradients (tasks, *shape) from X and D."""
        raise NotImplementedError

    def gramian_update(self, x: Tensor, d: Tensor) -> tuple[Tensor, Any]:
        """(G, update): the tasks' Gramian of the layer's weights and
        `update(weights) -> [(variable, gradient)]` for the weighted sum of
        the tasks. By default from the per-task gradients."""
        return _gramian_update(self.task_gradients(x, d))

    def reduces(self, saved: list[Any], tasks: int) -> bool:
        """Whether each task's pass reduces its own cotangents of this
        layer (`reduce`), given what the layer's calls saved and the number
        of tasks: then no task's cotangents outlive its pass. Not by
        default."""
        del saved, tasks
        return False

    def reduce(self, x: Tensor, d: Tensor) -> tuple[Tensor, ...]:
        """One task's share of one call, from the call's rows X (R, F) and
        the task's cotangent rows D_t (R, U): arrays that add up over the
        layer's calls, what `reduced_task_gradients` reads with the tasks'
        shares stacked on a leading axis."""
        raise NotImplementedError

    def reduced_task_gradients(
        self, reduced: tuple[Tensor, ...]
    ) -> list[tuple[Any, Tensor]]:
        """Each weight's per-task gradients from the tasks' shares."""
        raise NotImplementedError

    def reduced_gramian_update(self, reduced: tuple[Tensor, ...]) -> tuple[Tensor, Any]:
        """`gramian_update` from the tasks' shares (see `reduce`)."""
        return _gramian_update(self.reduced_task_gradients(reduced))


def _gramian_update(grads: list[tuple[Any, Tensor]]) -> tuple[Tensor, Any]:
    """(G, update) of per-task gradients [(variable, (tasks, *shape))]."""
    g = sum(_gram(grad) for _, grad in grads)

    def update(weights: Tensor) -> list[tuple[Any, Tensor]]:
        return [
            (v, ops.tensordot(ops.cast(weights, grad.dtype), grad, axes=1))
            for v, grad in grads
        ]

    return g, update


def _gram(rows: Tensor) -> Tensor:
    """The tasks' Gramian of one weight's rows (tasks, ...); the step's
    `training.algebra.gramian` of one piece (which this module cannot
    import: the training package imports it)."""
    flat = ops.reshape(ops.cast(rows, "float32"), (rows.shape[0], -1))
    return ops.matmul(flat, ops.transpose(flat))


def _mixed_gram(k: Tensor, d: Tensor) -> Tensor:
    """G_st = sum of K * (D_s D_t^T) for an R x R matrix K = X X^T and
    cotangents D (tasks, R, U): the Gramian of the rows X^T D_t without
    forming them."""
    d = ops.cast(d, "float32")
    tasks = d.shape[0]
    mixed = ops.stack([ops.matmul(k, d[t]) for t in range(tasks)])
    return ops.matmul(
        ops.reshape(mixed, (tasks, -1)), ops.transpose(ops.reshape(d, (tasks, -1)))
    )


class _Linear(InsideRule):
    """A kernel contracting the input's last `contracted` axes with its own
    first ones, the output its input's leading axes then the kernel's last
    ones, plus a bias over the output's last axes: X^T D_t (reshaped) for
    the kernel, D_t summed over rows (and over the kernel's output axes the
    bias does not span) for the bias.

    The Gramian of those rows needs neither where R is small: <X^T D_s, X^T
    D_t> is the sum of (X X^T) * (D_s D_t^T), R x R products instead of
    F x U rows per task. The layer-wise Gramian is the idea of torchjd's
    autogram engine (Quinton & Rey, "Jacobian Descent for Multi-Objective
    Optimization", 2024); where R is large the per-task products are formed
    once and serve the update too.
    """

    contracted = 1

    def __init__(self, layer: Any) -> None:
        super().__init__(layer)
        self.kernel = layer.kernel
        self.bias = layer.bias
        self.variables = [self.kernel] + ([self.bias] if self.bias is not None else [])

    def activation(self, pre: Tensor) -> Tensor:
        act = self.layer.activation
        return act(pre) if act is not None else pre

    def rows(self, inputs: Tensor) -> Tensor:
        features = math.prod(inputs.shape[len(inputs.shape) - self.contracted :])
        return ops.reshape(inputs, (-1, features))

    def cotangent_rows(self, cotangents: Tensor) -> Tensor:
        units = math.prod(self.kernel.shape[self.contracted :])
        return ops.reshape(cotangents, (cotangents.shape[0], -1, units))

    def _bias_sums(self, d: Tensor) -> Tensor:
        """The bias's per-task gradients (tasks, *bias shape)."""
        tasks = d.shape[0]
        sums = ops.sum(d, axis=1)
        width = math.prod(self.bias.shape)
        sums = ops.sum(ops.reshape(sums, (tasks, -1, width)), axis=1)
        return ops.reshape(sums, (tasks, *self.bias.shape))

    def _kernel_rows(self, products: Tensor) -> Tensor:
        return ops.reshape(products, (products.shape[0], *self.kernel.shape))

    def task_gradients(self, x: Tensor, d: Tensor) -> list[tuple[Any, Tensor]]:
        return self.reduced_task_gradients(self._shares(x, d))

    def _shares(self, x: Tensor, d: Tensor) -> tuple[Tensor, ...]:
        products = _per_task_products(x, d)
        return (products,) if self.bias is None else (products, self._bias_sums(d))

    def _mixed(self, rows: int, tasks: int) -> bool:
        """Whether the Gramian goes through X X^T (R x R products) rather
        than the per-task products X^T D_t (F x U each), by their cost."""
        features = math.prod(self.kernel.shape[: self.contracted])
        units = math.prod(self.kernel.shape[self.contracted :])
        return (
            rows * rows * (features + tasks * units) < tasks * rows * features * units
        )

    def reduces(self, saved: list[Any], tasks: int) -> bool:
        """Where the per-task products serve (R large), each task's pass
        forms its own, and its cotangents die with the pass: a Transformer's
        (tasks, 10,240, units) cotangents of every projection are never
        held at once."""
        rows = sum(math.prod(x.shape[: len(x.shape) - self.contracted]) for x in saved)
        return not self._mixed(rows, tasks)

    def reduce(self, x: Tensor, d: Tensor) -> tuple[Tensor, ...]:
        shares = self._shares(x, ops.expand_dims(d, 0))
        return tuple(share[0] for share in shares)

    def reduced_task_gradients(
        self, reduced: tuple[Tensor, ...]
    ) -> list[tuple[Any, Tensor]]:
        out = [(self.kernel, self._kernel_rows(reduced[0]))]
        if self.bias is not None:
            out.append((self.bias, reduced[1]))
        return out

    def gramian_update(self, x: Tensor, d: Tensor) -> tuple[Tensor, Any]:
        tasks, rows, _ = d.shape
        if not self._mixed(rows, tasks):
            return self.reduced_gramian_update(self._shares(x, d))
        sums = self._bias_sums(d) if self.bias is not None else None
        x32 = ops.cast(x, "float32")
        g = _mixed_gram(ops.matmul(x32, ops.transpose(x32)), d)

        def kernel_update(weights: Tensor) -> Tensor:
            summed = ops.tensordot(ops.cast(weights, d.dtype), d, axes=1)
            return ops.reshape(ops.matmul(ops.transpose(x), summed), self.kernel.shape)

        if sums is not None:
            g = g + _gram(sums)

        def update(weights: Tensor) -> list[tuple[Any, Tensor]]:
            out = [(self.kernel, kernel_update(weights))]
            if sums is not None:
                w = ops.cast(weights, sums.dtype)
                out.append((self.bias, ops.tensordot(w, sums, axes=1)))
            return out

        return g, update


def _plain(layer: Any, weight: Any) -> bool:
    """A built layer without LoRA, quantization or weight regularizers,
    whose `weight` trains."""
    return (
        layer.built
        and not getattr(layer, "lora_enabled", False)
        and getattr(layer, "quantization_mode", None) is None
        and weight.trainable
        and layer.activity_regularizer is None
        and all(
            getattr(layer, name, None) is None
            for name in (
                "kernel_regularizer",
                "bias_regularizer",
                "embeddings_regularizer",
            )
        )
    )


class KerasDense(_Linear):
    """The rule of a plain `keras.layers.Dense`."""

    @staticmethod
    def applies(layer: Any) -> bool:
        return type(layer) is keras.layers.Dense and _plain(layer, layer.kernel)

    def pre_activation(self, inputs: Tensor) -> Tensor:
        pre = ops.matmul(inputs, self.layer.kernel)
        if self.layer.use_bias:
            pre = pre + self.layer.bias
        return pre


class KerasEinsumDense(_Linear):
    """The rule of a plain `keras.layers.EinsumDense` whose equation
    contracts the input's last axes with the kernel's first ones and keeps
    the rest in order (`...a,ab->...b`, and every projection of
    `keras.layers.MultiHeadAttention`: `abc,cde->abde`, `abcd,cde->abe`),
    with a bias over the output's last axes or none.
    """

    def __init__(self, layer: Any) -> None:
        super().__init__(layer)
        self.contracted = _contraction(layer)

    @staticmethod
    def applies(layer: Any) -> bool:
        if type(layer) is not keras.layers.EinsumDense or not layer.built:
            return False
        if not _plain(layer, layer.kernel) or _contraction(layer) is None:
            return False
        bias, kernel = layer.bias, tuple(layer.kernel.shape)
        return bias is None or (
            len(bias.shape) <= len(kernel) - _contraction(layer)
            and tuple(bias.shape) == kernel[len(kernel) - len(bias.shape) :]
        )

    def pre_activation(self, inputs: Tensor) -> Tensor:
        pre = ops.einsum(self.layer.equation, inputs, self.layer.kernel)
        if self.layer.bias is not None:
            pre = ops.add(pre, self.layer.bias)
        return pre


def _contraction(layer: Any) -> int | None:
    """How many trailing input axes an EinsumDense equation contracts with
    the kernel's leading axes, or None for any other shape of equation."""
    spec = layer.equation.replace(" ", "")
    if spec.count("->") != 1 or spec.count(",") != 1:
        return None
    operands, output = spec.split("->")
    x_spec, k_spec = operands.split(",")
    if "." in k_spec:
        return None
    contracted = ""
    for letter in k_spec:
        if letter in output or letter not in x_spec:
            break
        contracted += letter
    lead = x_spec[: len(x_spec) - len(contracted)]
    kept = k_spec[len(contracted) :]
    letters = lead.replace("...", "") + k_spec
    if (
        not contracted
        or not x_spec.endswith(contracted)
        or output != lead + kept
        or len(set(letters)) != len(letters)
    ):
        return None
    return len(contracted)


class KerasEmbedding(InsideRule):
    """The rule of a plain `keras.layers.Embedding`: its output is the rows
    of the table at the ids, so a task's gradient is its cotangents summed
    into the rows of their ids. The Gramian never builds the table's
    per-task gradients (vocabulary x width each): each distinct id among
    the R rows gets one compact row (`_compact`), and the tasks' cotangents
    summed into those (R x U per task at most) give the same inner products.
    """

    def __init__(self, layer: Any) -> None:
        super().__init__(layer)
        self.table = layer.embeddings
        self.variables = [self.table]

    @staticmethod
    def applies(layer: Any) -> bool:
        return type(layer) is keras.layers.Embedding and _plain(layer, layer.embeddings)

    def pre_activation(self, inputs: Tensor) -> Tensor:
        if keras.backend.standardize_dtype(inputs.dtype) not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        out = ops.take(self.layer.embeddings, inputs, axis=0)
        return ops.cast(out, self.layer.compute_dtype)

    def rows(self, inputs: Tensor) -> Tensor:
        return ops.reshape(ops.cast(inputs, "int32"), (-1,))

    def _scattered(self, ids: Tensor, values: Tensor) -> Tensor:
        """Rows of `values` (R, U) summed into a table's rows at `ids`."""
        return ops.cast(
            ops.segment_sum(values, ids, num_segments=self.table.shape[0]),
            self.table.dtype,
        )

    def task_gradients(self, x: Any, d: Tensor) -> list[tuple[Any, Tensor]]:
        grads = [self._scattered(x, d[t]) for t in range(d.shape[0])]
        return [(self.table, ops.stack(grads))]

    def _update(self, x: Any, d: Tensor) -> Any:
        """`update(weights)`: the table's gradient for the weighted sum of
        the tasks, one scatter of sum_t w_t D_t."""

        def update(weights: Tensor) -> list[tuple[Any, Tensor]]:
            total = ops.tensordot(ops.cast(weights, d.dtype), d, axes=1)
            return [(self.table, self._scattered(x, total))]

        return update

    def gramian_update(self, x: Tensor, d: Tensor) -> tuple[Tensor, Any]:
        ids, size = _compact(x, self.table.shape[0])
        summed = ops.stack(
            [
                ops.segment_sum(ops.cast(d[t], "float32"), ids, num_segments=size)
                for t in range(d.shape[0])
            ]
        )
        return _gram(summed), self._update(x, d)


def _compact(ids: Tensor, vocabulary: int) -> tuple[Tensor, int]:
    """(ids', size): ids renumbered into [0, size), equal ids equal, with
    size = min(vocabulary, number of ids): where the ids are fewer than the
    table's rows, each id maps to the position of one of its occurrences
    (a table of positions written at the ids, read back at them)."""
    count = ids.shape[0]
    if vocabulary <= count:
        return ids, vocabulary
    positions = ops.scatter_update(
        ops.zeros((vocabulary,), "int32"),
        ops.expand_dims(ids, -1),
        ops.arange(count, dtype="int32"),
    )
    return ops.take(positions, ids), count


class EmbeddingBag(KerasEmbedding):
    """The rule of a layer whose pre-activation is, per example, a weighted
    sum of an embedding table's rows (`keras_mtl.encoders.NgramEncoder`):
    the layer offers `bag(inputs, training) -> (ids, weights)`, each
    (batch, slots), its `embedding` (a plain `keras.layers.Embedding`) and
    `finish(pooled, training)`, the output from the weighted sum.

    That sum is a linear layer over a sparse input: A (batch x table rows)
    holds the weights at the ids, the pre-activation is A E, a task's
    gradient of the table A^T D_t, and the tasks' Gramian the sum of
    (A A^T) * (D_s D_t^T): batch x batch products. D_t is the cotangent of
    the pooled vector, one row per example, never one per n-gram, and the
    table's per-task gradients are never formed. A's columns are the
    distinct ids of the batch (see `_compact`).
    """

    def __init__(self, layer: Any) -> None:
        InsideRule.__init__(self, layer)
        self.table = layer.embedding.embeddings
        self.variables = [self.table]

    @staticmethod
    def applies(layer: Any) -> bool:
        embedding = getattr(layer, "embedding", None)
        return (
            embedding is not None
            and KerasEmbedding.applies(embedding)
            and len(layer.trainable_variables) == 1
            and layer.activity_regularizer is None
        )

    def call(
        self, inputs: Tensor, perturbation: Tensor | None, training: Any = None
    ) -> tuple[Tensor, Tensor, Any]:
        ids, weights = self.layer.bag(inputs, training=training)
        vectors = self.layer.embedding(ids)
        pre = ops.sum(vectors * ops.expand_dims(weights, -1), axis=1)
        if perturbation is not None:
            pre = pre + perturbation
        return self.layer.finish(pre, training=training), pre, (ids, weights)

    def rows(self, saved: Any) -> Any:
        ids, weights = saved
        return ops.cast(ids, "int32"), ops.cast(weights, "float32")

    def join(self, rows: list[Any]) -> Any:
        if len(rows) == 1:
            return rows[0]
        slots = max(ids.shape[1] for ids, _ in rows)

        def padded(t: Tensor) -> Tensor:
            return ops.pad(t, [(0, 0), (0, slots - t.shape[1])])

        return (
            ops.concatenate([padded(ids) for ids, _ in rows], axis=0),
            ops.concatenate([padded(w) for _, w in rows], axis=0),
        )

    def _scattered(self, x: Any, d: Tensor) -> Tensor:
        """A^T D: D (examples, U) into the table's rows."""
        ids, weights = x
        values = ops.expand_dims(weights, -1) * ops.expand_dims(
            ops.cast(d, "float32"), 1
        )
        total = ops.segment_sum(
            ops.reshape(values, (-1, d.shape[-1])),
            ops.reshape(ids, (-1,)),
            num_segments=self.table.shape[0],
        )
        return ops.cast(total, self.table.dtype)

    def gramian_update(self, x: Any, d: Tensor) -> tuple[Tensor, Any]:
        ids, weights = x
        examples, slots = ids.shape
        columns, size = _compact(ops.reshape(ids, (-1,)), self.table.shape[0])
        flat = ops.reshape(ops.arange(examples, dtype="int32"), (-1, 1)) * size
        cells = ops.reshape(flat + ops.reshape(columns, (examples, slots)), (-1,))
        a = ops.reshape(
            ops.segment_sum(ops.reshape(weights, (-1,)), cells, examples * size),
            (examples, size),
        )
        return _mixed_gram(ops.matmul(a, ops.transpose(a)), d), self._update(x, d)


INSIDE_RULES: tuple[type[InsideRule], ...] = (
    KerasDense,
    KerasEinsumDense,
    KerasEmbedding,
)


def rule_inside(layer: Any) -> InsideRule | None:
    """The rule inside autodiff that serves `layer`, or None: its own
    (`layer.inside_rule()`, like `NgramEncoder`'s) or one of Keras's."""
    own = getattr(layer, "inside_rule", None)
    if callable(own):
        return own()
    for kind in INSIDE_RULES:
        if kind.applies(layer):
            return kind(layer)
    return None


def _per_task_products(x: Tensor, d: Tensor) -> Tensor:
    """X^T D_t for each task t: (tasks, F, U), one plain product per task."""
    xt = ops.transpose(x)
    return ops.stack([ops.matmul(xt, d[t]) for t in range(d.shape[0])])


def perturbed(
    rules: list[InsideRule], perturbations: list[Tensor] | None, calls: list
) -> contextlib.AbstractContextManager:
    """Within, each call of a ruled layer adds the next of `perturbations`
    (none when None) to its pre-activation and appends (rule, inputs,
    pre-activation) to `calls`."""

    def patched(rule: InsideRule) -> Any:
        def call(inputs: Tensor, training: Any = None) -> Tensor:
            index = len(calls)
            extra = None if perturbations is None else perturbations[index]
            out, pre, saved = rule.call(inputs, extra, training)
            calls.append((rule, saved, pre))
            return out

        return call

    return replaced_calls({rule.layer: patched(rule) for rule in rules})


def zero_perturbations(calls: list) -> list[Tensor]:
    """A zero for each call `perturbed` recorded, shaped as its
    pre-activation: the perturbations whose cotangents are a rule's D_t."""
    return [ops.zeros(pre.shape, pre.dtype) for _, _, pre in calls]


def rule_for(layer: Any) -> Any:
    """The per-task gradient rule of `layer`, or None without one."""
    if getattr(layer, "supports_task_gradients", False):
        return layer
    if KerasLSTM.applies(layer):
        return KerasLSTM(layer)
    if KerasGRU.applies(layer):
        return KerasGRU(layer)
    return None
