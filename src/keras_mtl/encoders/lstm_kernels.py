"""The LSTM's forward pass and its per-task backward pass, written out.

Balancing methods need each task's gradient of the shared weights. Autodiff
gets them with one backward pass per task. Here the backward recursion runs
once for all tasks at once (the tasks stacked beside the batch, one matrix
product per step), from the gates the forward pass saved, and each step adds
its share of every weight's gradient to running sums, so that the
pre-activation gradients of all steps and tasks are never held at once.
Same numbers as autodiff (tests check it), in keras.ops, so every backend
uses it.

Gates follow Keras's order: input, forget, cell, output.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from keras import ops

from keras_mtl import backend

Tensor = Any


class Saved(NamedTuple):
    """What the forward pass keeps for the backward pass: per step, time-major,
    h_{t-1} and the six factors the backward recursion multiplies by, side by
    side (one tensor, as every backend's scan stacks one output reliably):
    o (1 - o) tanh(c_t), o (1 - tanh(c_t)^2), g i (1 - i), c_{t-1} f (1 - f),
    i (1 - g^2) and f."""

    gates: Tensor  # (time, batch, 7 units)
    units: int

    @property
    def h_prev(self) -> Tensor:
        return self.gates[..., : self.units]


def forward(
    projected: Tensor, recurrent_kernel: Tensor, units: int, save: bool = False
) -> tuple[Tensor, Saved | None]:
    """Runs the recurrence on precomputed input projections.

    Args:
        projected: x_t W + b for every step, (batch, time, 4 units).
        recurrent_kernel: U, (units, 4 units).
        units: The state width.
        save: Keep the gates for `task_backward`.

    Returns:
        The last state h_T (batch, units), and the saved gates or None.
    """
    batch = ops.shape(projected)[0]
    zeros = ops.zeros((batch, units), dtype=projected.dtype)

    def step(carry: tuple, z: Tensor) -> tuple:
        h, c = carry
        z = z + ops.matmul(h, recurrent_kernel)
        i = ops.sigmoid(z[:, :units])
        f = ops.sigmoid(z[:, units : 2 * units])
        g = ops.tanh(z[:, 2 * units : 3 * units])
        o = ops.sigmoid(z[:, 3 * units :])
        c_next = f * c + i * g
        tanh_c = ops.tanh(c_next)
        h_next = o * tanh_c
        kept = None
        if save:
            factors = [
                h,
                o * (1 - o) * tanh_c,
                o * (1 - tanh_c * tanh_c),
                g * i * (1 - i),
                c * f * (1 - f),
                i * (1 - g * g),
                f,
            ]
            kept = ops.concatenate(factors, axis=-1)
        return (h_next, c_next), kept

    y_like = ops.zeros((batch, 7 * units), dtype=projected.dtype) if save else None
    (h, _), saved = backend.scan(
        step, (zeros, zeros), ops.transpose(projected, (1, 0, 2)), y_like
    )
    return h, Saved(saved, units) if save else None


def task_gradients(
    saved: Saved,
    recurrent_kernel: Tensor,
    cotangents: Tensor,
    step_inputs: Tensor | None = None,
    absorb: Any = None,
    start: Any = None,
) -> tuple[Tensor, Tensor, Any]:
    """Per-task weight gradients of an LSTM from each task's gradient of its
    last state, summed step by step inside the backward recursion (the
    pre-activation gradients of all steps, time x batch x tasks x 4 units,
    are not held at once: on 280 steps and 10 tasks they would take several
    times the memory of the whole equal-weighting step).

    Args:
        saved: From `forward(..., save=True)`.
        recurrent_kernel: U, (units, 4 units).
        cotangents: Each task's gradient of h_T, (tasks, batch, units).
        step_inputs: What `absorb` reads at each step, time-major
            (time, batch, width), float.
        absorb: (sum, dz_t (batch, tasks * 4 units), step input (batch,
            width)) -> sum: adds one step's gradient of the input side.
            None: the dz_t of every step are returned instead, stacked
            (time, batch, tasks * 4 units), and dU and db come from them
            after the recursion.
        start: The zero `sum` `absorb` adds to.

    Returns:
        (dU (tasks, units, 4 units), db (tasks, 4 units), the input side's
        sum or the stacked dz).
    """
    k = cotangents.shape[0]
    units = cotangents.shape[-1]
    transposed = ops.transpose(recurrent_kernel)
    width = 7 * units

    def step(carry: tuple, joined: Tensor) -> tuple:
        dh, dc, d_recurrent, d_bias, total = carry  # dh, dc: (batch, tasks, units)
        gates, extra = joined[:, :width], joined[:, width:]
        to_o, to_c, to_i, to_f, to_g, forget = (
            ops.expand_dims(gates[:, j * units : (j + 1) * units], 1)
            for j in range(1, 7)
        )
        dc = dc + dh * to_c
        dz = ops.concatenate([dc * to_i, dc * to_f, dc * to_g, dh * to_o], axis=-1)
        flat = ops.reshape(dz, (-1, k * 4 * units))
        if absorb is not None:
            h_prev = ops.transpose(gates[:, :units])
            d_recurrent = d_recurrent + ops.matmul(h_prev, flat)
            d_bias = d_bias + ops.sum(flat, axis=0)
            total = absorb(total, flat, extra)
        dh_prev = ops.matmul(ops.reshape(dz, (-1, 4 * units)), transposed)
        carry = (ops.reshape(dh_prev, (-1, k, units)), dc * forget)
        return (*carry, d_recurrent, d_bias, total), None if absorb else flat

    begin = ops.transpose(cotangents, (1, 0, 2))
    joined = saved.gates
    if step_inputs is not None:
        joined = ops.concatenate([joined, ops.cast(step_inputs, joined.dtype)], -1)
    y_like = None
    if absorb is None:
        start = ops.zeros((), begin.dtype)
        y_like = ops.zeros((begin.shape[0], k * 4 * units), begin.dtype)
    (_, _, d_recurrent, d_bias, total), stacked = backend.scan(
        step,
        (
            begin,
            ops.zeros_like(begin),
            ops.zeros((units, k * 4 * units), dtype=begin.dtype),
            ops.zeros((k * 4 * units,), dtype=begin.dtype),
            start,
        ),
        joined,
        y_like,
        reverse=True,
    )
    if absorb is None:
        # dU and db as one product and one sum over all steps (faster than
        # step by step, where dz is held anyway).
        rows = ops.reshape(stacked, (-1, k * 4 * units))
        d_recurrent = ops.matmul(
            ops.transpose(ops.reshape(saved.h_prev, (-1, units))), rows
        )
        d_bias = ops.sum(rows, axis=0)
    d_recurrent = ops.transpose(ops.reshape(d_recurrent, (units, k, -1)), (1, 0, 2))
    return d_recurrent, ops.reshape(d_bias, (k, -1)), total if absorb else stacked


def sequence_gradients(
    saved: Saved,
    recurrent_kernel: Tensor,
    cotangents: Tensor,
    sequence: Tensor,
    one_hot: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-task gradients (dU, db, dW) of an LSTM over a float sequence
    (batch, time, features) projected by W. The gradient of W is one large
    product over all steps where the stacked dz is at most twice the
    sequence's size (faster), else summed step by step (less memory).
    `one_hot`: `is_one_hot(sequence)`, to sum rows by id where it holds."""
    k, units = cotangents.shape[0], cotangents.shape[-1]
    features = sequence.shape[-1]
    if k * 4 * units <= 2 * features:
        d_recurrent, d_bias, dz = task_gradients(saved, recurrent_kernel, cotangents)
        d_kernel = kernel_gradient(
            sequence, ops.reshape(dz, (-1, k * 4 * units)), one_hot
        )
    else:
        d_recurrent, d_bias, d_kernel = task_gradients(
            saved,
            recurrent_kernel,
            cotangents,
            time_major(sequence),
            sequence_absorb if one_hot is None else one_hot_absorb(one_hot),
            ops.zeros((features, k * 4 * units), sequence.dtype),
        )
    return d_recurrent, d_bias, by_task(d_kernel, k)


def is_one_hot(sequence: Tensor) -> Tensor:
    """Whether a float sequence is exactly one-hot (every value 0 or 1, one 1
    per step: the seed's input), as a scalar boolean tensor: one pass over
    the sequence, about a tenth of the cost of projecting it."""
    binary = ops.all(ops.logical_or(sequence == 0, sequence == 1))
    return ops.logical_and(binary, ops.all(ops.sum(sequence, axis=-1) == 1))


def _ids(one_hot: Tensor) -> Tensor:
    """The position of each step's 1 (exact: one nonzero term per sum);
    clipped, as the lookup branch may be evaluated on other inputs too."""
    features = one_hot.shape[-1]
    positions = ops.arange(features, dtype=one_hot.dtype)
    ids = ops.cast(ops.sum(one_hot * positions, axis=-1), "int32")
    return ops.clip(ids, 0, features - 1)


def project(sequence: Tensor, kernel: Tensor, one_hot: Tensor) -> Tensor:
    """x_t W for every step: row id_t of W where the sequence is one-hot
    (`is_one_hot`, decided on the data by `ops.cond`), the product
    otherwise. On the seed's input (280 x 256, batch 128) 14 ms instead of
    24 ms, the check included (docs/benchmarks.md)."""
    return ops.cond(
        one_hot,
        lambda: ops.take(kernel, _ids(sequence), axis=0),
        lambda: ops.matmul(sequence, kernel),
    )


def kernel_gradient(sequence: Tensor, rows: Tensor, one_hot: Tensor | None) -> Tensor:
    """X^T dz over all steps, dz's rows (time * batch, n) time-major: dz's
    rows summed by id where `one_hot` holds (6 ms instead of 31 ms on the
    seed's input with 2 tasks), the product otherwise."""
    features = sequence.shape[-1]

    def product() -> Tensor:
        x = ops.reshape(time_major(sequence), (-1, features))
        return ops.matmul(ops.transpose(x), rows)

    if one_hot is None:
        return product()

    def lookup() -> Tensor:
        ids = ops.reshape(ops.transpose(_ids(sequence)), (-1,))
        return backend.segment_sum(rows, ids, features)

    return ops.cond(one_hot, lookup, product)


def one_hot_absorb(one_hot: Tensor) -> Any:
    """`sequence_absorb`, each step's rows summed by id where `one_hot`."""

    def absorb(total: Tensor, rows: Tensor, extra: Tensor) -> Tensor:
        return ops.cond(
            one_hot,
            lambda: total + backend.segment_sum(rows, _ids(extra), extra.shape[-1]),
            lambda: sequence_absorb(total, rows, extra),
        )

    return absorb


def by_task(total: Tensor, k: int) -> Tensor:
    """(rows, k * n) -> (k, rows, n): a sum over steps, split by task."""
    return ops.transpose(ops.reshape(total, (total.shape[0], k, -1)), (1, 0, 2))


def lookup_absorb(vocab: int) -> Any:
    """`absorb` for a table read by row ids (the one-hot kernel, or an
    embedding): each step's rows scatter-added by id (the step input's last
    column holds the ids)."""

    def absorb(total: Tensor, rows: Tensor, extra: Tensor) -> Tensor:
        ids = ops.cast(extra[:, -1], "int32")
        return total + backend.segment_sum(rows, ids, vocab)

    return absorb


def sequence_absorb(total: Tensor, rows: Tensor, extra: Tensor) -> Tensor:
    """`absorb` for the input kernel W of a float sequence: x_t^T dz_t (the
    step input is x_t)."""
    return total + ops.matmul(ops.transpose(extra), rows)


def time_major(values: Tensor) -> Tensor:
    """(batch, time, ...) -> (time, batch, ...); ids get a last axis of 1."""
    if len(values.shape) == 2:
        values = ops.expand_dims(values, -1)
    return ops.transpose(values, (1, 0, 2))
