"""The LSTM's forward pass and its per-task backward pass, written out.

Balancing methods need each task's gradient of the shared weights. Autodiff
gets them with one backward pass per task; for an LSTM that repeats the
weight-gradient products at every time step for every task. Here the
backward recursion runs once for all tasks at once (the tasks stacked beside
the batch, one matrix product per step), and the weight gradients come out
of a few large products over all steps, from the gates the forward pass
saved. Same numbers as autodiff (tests check it), in keras.ops, so every
backend uses it.

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


def task_backward(saved: Saved, recurrent_kernel: Tensor, cotangents: Tensor) -> Tensor:
    """Gradients of the pre-activations for every task at once.

    Args:
        saved: From `forward(..., save=True)`.
        recurrent_kernel: U, (units, 4 units).
        cotangents: Each task's gradient of h_T, (tasks, batch, units).

    Returns:
        dz, the gradients of x_t W + b + h_{t-1} U, shaped
        (time * batch, tasks * 4 units) (rows in time-major order).
    """
    k = cotangents.shape[0]
    units = cotangents.shape[-1]
    transposed = ops.transpose(recurrent_kernel)

    def step(carry: tuple, gates: Tensor) -> tuple:
        dh, dc = carry  # (batch, tasks, units)
        to_o, to_c, to_i, to_f, to_g, forget = (
            ops.expand_dims(gates[:, j * units : (j + 1) * units], 1)
            for j in range(1, 7)
        )
        dc = dc + dh * to_c
        dz = ops.concatenate([dc * to_i, dc * to_f, dc * to_g, dh * to_o], axis=-1)
        dh_prev = ops.matmul(ops.reshape(dz, (-1, 4 * units)), transposed)
        return (ops.reshape(dh_prev, (-1, k, units)), dc * forget), dz

    start = ops.transpose(cotangents, (1, 0, 2))
    y_like = ops.zeros((ops.shape(start)[0], k, 4 * units), dtype=start.dtype)
    _, dz = backend.scan(
        step, (start, ops.zeros_like(start)), saved.gates, y_like, reverse=True
    )
    steps, batch = saved.gates.shape[0], saved.gates.shape[1]
    rows = steps * batch if steps is not None and batch is not None else -1
    return ops.reshape(dz, (rows, k * 4 * units))


def per_task(flat: Tensor, k: int) -> Tensor:
    """(rows, k * n) -> (k, rows, n)."""
    return ops.transpose(ops.reshape(flat, (ops.shape(flat)[0], k, -1)), (1, 0, 2))


def weight_gradients(saved: Saved, dz: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per-task gradients of the recurrent kernel and the bias.

    Returns:
        (dU (tasks, units, 4 units), db (tasks, 4 units)).
    """
    units = saved.units
    h_prev = ops.reshape(saved.h_prev, (-1, units))
    d_kernel = ops.matmul(ops.transpose(h_prev), dz)  # (units, k * 4 units)
    d_kernel = ops.transpose(ops.reshape(d_kernel, (units, k, -1)), (1, 0, 2))
    d_bias = ops.reshape(ops.sum(dz, axis=0), (k, -1))
    return d_kernel, d_bias


def lookup_gradients(
    ids: Tensor, dz: Tensor, k: int, vocab: int, pad: bool = True
) -> Tensor:
    """Per-task gradients of a table read by row ids (the one-hot kernel,
    or an embedding): a scatter-add of dz by id; with `pad`, id 0 (padding,
    a zero row of the one-hot input) gets none.

    Args:
        ids: (batch, time) integer ids.
        dz: (time * batch, k * n) rows in time-major order.
        k: Number of tasks.
        vocab: Rows of the table.

    Returns:
        (tasks, vocab, n).
    """
    segments = ops.reshape(ops.transpose(ops.cast(ids, "int32")), (-1,))
    table = backend.segment_sum(dz, segments, vocab)
    if pad:
        table = table * ops.expand_dims(
            ops.cast(ops.arange(vocab) > 0, table.dtype), -1
        )
    return ops.transpose(ops.reshape(table, (vocab, k, -1)), (1, 0, 2))


def all_task_gradients(
    saved: Saved,
    recurrent_kernel: Tensor,
    cotangents: Tensor,
    sequence: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Per-task gradients of an LSTM's weights from each task's gradient of
    its last state.

    Args:
        saved: From `forward(..., save=True)`.
        recurrent_kernel: U, (units, 4 units).
        cotangents: (tasks, batch, units).
        sequence: The float input sequence (batch, time, features) that was
            projected by the input kernel W, or None where the projection
            was a lookup (the caller scatters `dz` itself).

    Returns:
        (dz as `task_backward` gives it, dU, db, dW or None).
    """
    k = cotangents.shape[0]
    dz = task_backward(saved, recurrent_kernel, cotangents)
    d_recurrent, d_bias = weight_gradients(saved, dz, k)
    d_kernel = None
    if sequence is not None:
        rows = ops.reshape(ops.transpose(sequence, (1, 0, 2)), (-1, sequence.shape[-1]))
        d_kernel = per_task(ops.matmul(ops.transpose(rows), dz), k)
    return dz, d_recurrent, d_bias, d_kernel
