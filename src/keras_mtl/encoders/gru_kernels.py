"""The GRU's forward pass and its per-task backward pass, written out.

The GRU counterpart of `lstm_kernels` (Cho et al. 2014,
https://arxiv.org/abs/1406.1078), in Keras's convention (`reset_after=True`,
the default): gates in the order update z, reset r, candidate;
z = sigmoid(x W_z + b_z + h U_z + c_z), r likewise,
h~ = tanh(x W_h + b_h + r * (h U_h + c_h)), h' = z h + (1 - z) h~.
The backward recursion runs once for all tasks (stacked beside the batch),
each step adding its share of every weight's gradient to running sums.
Same numbers as autodiff (tests check it), in keras.ops.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from keras import ops

from keras_mtl import backend

Tensor = Any


class Saved(NamedTuple):
    """Per step, time-major, side by side: h_{t-1}, z, r, h~ and the
    candidate's recurrent term h U_h + c_h (before the reset gate)."""

    gates: Tensor  # (time, batch, 5 units)
    units: int


def forward(
    projected: Tensor,
    recurrent_kernel: Tensor,
    recurrent_bias: Tensor | None,
    units: int,
    save: bool = False,
) -> tuple[Tensor, Saved | None]:
    """Runs the recurrence on precomputed input projections.

    Args:
        projected: x_t W + b for every step, (batch, time, 3 units).
        recurrent_kernel: U, (units, 3 units).
        recurrent_bias: c, (3 units,), or None.
        units: The state width.
        save: Keep what `task_gradients` needs.

    Returns:
        The last state h_T (batch, units), and the saved gates or None.
    """
    batch = ops.shape(projected)[0]

    def step(h: Tensor, x: Tensor) -> tuple:
        inner = ops.matmul(h, recurrent_kernel)
        if recurrent_bias is not None:
            inner = inner + recurrent_bias
        z = ops.sigmoid(x[:, :units] + inner[:, :units])
        r = ops.sigmoid(x[:, units : 2 * units] + inner[:, units : 2 * units])
        candidate = ops.tanh(x[:, 2 * units :] + r * inner[:, 2 * units :])
        h_next = z * h + (1 - z) * candidate
        kept = None
        if save:
            kept = ops.concatenate([h, z, r, candidate, inner[:, 2 * units :]], -1)
        return h_next, kept

    y_like = ops.zeros((batch, 5 * units), dtype=projected.dtype) if save else None
    h, saved = backend.scan(
        step,
        ops.zeros((batch, units), dtype=projected.dtype),
        ops.transpose(projected, (1, 0, 2)),
        y_like,
    )
    return h, Saved(saved, units) if save else None


def task_gradients(
    saved: Saved,
    recurrent_kernel: Tensor,
    cotangents: Tensor,
    step_inputs: Tensor,
    absorb: Any,
    start: Any,
) -> tuple[Tensor, Tensor, Tensor, Any]:
    """Per-task weight gradients of a GRU from each task's gradient of its
    last state.

    Args:
        saved: From `forward(..., save=True)`.
        recurrent_kernel: U, (units, 3 units).
        cotangents: (tasks, batch, units).
        step_inputs: What `absorb` reads at each step, time-major (time,
            batch, width), float.
        absorb: (sum, dx_t (batch, tasks * 3 units), step input) -> sum:
            adds one step's gradient of the input side (dx_t: the gradient
            of x_t W + b).
        start: The zero `sum`.

    Returns:
        (dU (tasks, units, 3 units), dc (tasks, 3 units), db (tasks,
        3 units), the input side's sum).
    """
    k = cotangents.shape[0]
    units = cotangents.shape[-1]
    transposed = ops.transpose(recurrent_kernel)
    width = 5 * units

    def step(carry: tuple, joined: Tensor) -> tuple:
        dh, d_recurrent, d_rbias, d_ibias, total = carry  # dh: (batch, tasks, units)
        parts = [joined[:, j * units : (j + 1) * units] for j in range(5)]
        h_prev, z, r, candidate, inner_h = (ops.expand_dims(p, 1) for p in parts)
        extra = joined[:, width:]
        d_candidate = dh * (1 - z) * (1 - candidate * candidate)
        d_z = dh * (h_prev - candidate) * z * (1 - z)
        d_r = d_candidate * inner_h * r * (1 - r)
        dx = ops.reshape(
            ops.concatenate([d_z, d_r, d_candidate], -1), (-1, 3 * k * units)
        )
        d_inner = ops.concatenate([d_z, d_r, d_candidate * r], -1)
        flat_inner = ops.reshape(d_inner, (-1, 3 * k * units))
        d_recurrent = d_recurrent + ops.matmul(ops.transpose(parts[0]), flat_inner)
        d_rbias = d_rbias + ops.sum(flat_inner, axis=0)
        d_ibias = d_ibias + ops.sum(dx, axis=0)
        total = absorb(total, dx, extra)
        back = ops.matmul(ops.reshape(d_inner, (-1, 3 * units)), transposed)
        dh_prev = dh * z + ops.reshape(back, (-1, k, units))
        return (dh_prev, d_recurrent, d_rbias, d_ibias, total), None

    begin = ops.transpose(cotangents, (1, 0, 2))
    joined = ops.concatenate(
        [saved.gates, ops.cast(step_inputs, saved.gates.dtype)], -1
    )
    zeros = ops.zeros((3 * k * units,), dtype=begin.dtype)
    (_, d_recurrent, d_rbias, d_ibias, total), _ = backend.scan(
        step,
        (begin, ops.zeros((units, 3 * k * units), begin.dtype), zeros, zeros, start),
        joined,
        None,
        reverse=True,
    )
    d_recurrent = ops.transpose(ops.reshape(d_recurrent, (units, k, -1)), (1, 0, 2))
    return (
        d_recurrent,
        ops.reshape(d_rbias, (k, -1)),
        ops.reshape(d_ibias, (k, -1)),
        total,
    )
