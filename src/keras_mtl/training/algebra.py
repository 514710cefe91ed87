"""The algebra of a balanced step, on any backend (`keras.ops` only).

From the per-task rows (pieces of the Jacobian, each of shape
(tasks, ...)), a method's `Step`: a Gramian method's weights from
G = J J^T, a Jacobian method's update vector, reused between
recomputations with `update_every`; then the state a step leaves behind.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from keras import ops

from keras_mtl.training.balancing import Balancing

Tensor = Any


class Factored(NamedTuple):
    """The tasks' rows of a representation Z (batch, features) that reaches
    the outputs only through Dense layers (`Split.readers`): row t is
    D_t W^T, D_t (batch, units) task t's cotangents of the layers'
    pre-activations side by side and W (features, units) their kernels
    side by side. Its Gramian, sum over the batch of D_s[b] W^T W D_t[b]^T,
    and a weighted sum of its rows need no row: on a 1024-wide
    representation with 10 single-unit heads 0.05 ms against 0.38 ms from
    the rows (docs/benchmarks.md)."""

    cotangents: Tensor  # (tasks, batch, units)
    kernel: Tensor  # (features, units)

    def gramian(self) -> Tensor:
        w = ops.cast(self.kernel, "float32")
        d = ops.cast(self.cotangents, "float32")
        tasks, units = d.shape[0], d.shape[-1]
        # D_t W^T W over every task's rows at once, then <., D_s> per pair.
        mixed = ops.matmul(ops.reshape(d, (-1, units)), ops.matmul(ops.transpose(w), w))
        return ops.matmul(
            ops.reshape(mixed, (tasks, -1)), ops.transpose(ops.reshape(d, (tasks, -1)))
        )

    def combined(self, weights: Tensor) -> list[Tensor]:
        d = self.cotangents
        summed = ops.tensordot(ops.cast(weights, d.dtype), d, axes=1)
        kernel = ops.cast(self.kernel, d.dtype)
        return [ops.matmul(summed, ops.transpose(kernel))]


def gramian(pieces: list[Tensor] | Factored) -> Tensor:
    """G = J J^T from Jacobian pieces of shape (tasks, ...)."""
    if isinstance(pieces, Factored):
        return pieces.gramian()
    k = pieces[0].shape[0]
    total = None
    for piece in pieces:
        flat = ops.reshape(ops.cast(piece, "float32"), (k, -1))
        part = ops.matmul(flat, ops.transpose(flat))
        total = part if total is None else total + part
    return total


def combine(weights: Tensor, pieces: list[Tensor] | Factored) -> list[Tensor]:
    """sum_t w_t J_t for each piece: the update of a Gramian method."""
    if isinstance(pieces, Factored):
        return pieces.combined(weights)
    return [
        ops.tensordot(ops.cast(weights, piece.dtype), piece, axes=1) for piece in pieces
    ]


def flatten(pieces: list[Tensor]) -> Tensor:
    """The Jacobian (tasks, columns) from its pieces."""
    k = pieces[0].shape[0]
    return ops.concatenate([ops.reshape(p, (k, -1)) for p in pieces], axis=1)


def unflatten(vector: Tensor, like: list[Tensor]) -> list[Tensor]:
    """Splits a vector into tensors shaped like `like` (without the task axis)."""
    out, start = [], 0
    for piece in like:
        shape = tuple(piece.shape[1:])
        if None in shape:  # gathered samples (see `jacobian_step`)
            shape = tuple(ops.shape(piece)[1:])
        size = 1
        for dim in shape:
            size = size * dim
        out.append(ops.reshape(vector[start : start + size], shape))
        start += size
    return out


class Step(NamedTuple):
    """What a gradient method decided for one step."""

    shared: list[Tensor]  # update pieces (Jacobian methods) or [] (Gramian)
    weights: Tensor  # task weights (effective, for Jacobian methods)
    heads: Tensor  # factor of each task's own head gradient
    state: list[Tensor]  # the method's new state
    gramian: Tensor


def gramian_step(
    balancing: Balancing, g: Tensor, losses: Tensor, counts: Tensor
) -> Step:
    """Weights of a Gramian method from the tasks' Gramian."""
    k = balancing.num_tasks
    out, new_state = balancing.gramian_weights(g, losses, counts)
    return Step([], out[:k], out[k:], new_state, g)


def jacobian_step(
    balancing: Balancing, pieces: list[Tensor], losses: Tensor, counts: Tensor
) -> Step:
    """Update of a Jacobian method from Jacobian pieces."""
    jac = flatten(pieces)
    # The columns are known when the step is traced, except for samples
    # gathered from replicas of unknown shares (TensorFlow).
    n = ops.shape(jac)[1] if jac.shape[1] is None else int(jac.shape[1])
    k = balancing.num_tasks
    out, new_state = balancing.call_host(jac, losses, counts)
    # The Gramian serves only the cosine metrics here: without them the
    # step keeps the stored one instead of computing it.
    g = gramian(pieces) if balancing.cosine else balancing.state.last_gramian.value
    return Step(
        unflatten(out[:n], pieces),
        out[n : n + k],
        out[n + k :],
        new_state,
        g,
    )


def plus(a: list[Tensor], b: list[Tensor] | None) -> list[Tensor]:
    """a + b piece by piece, or a when b is None."""
    return a if b is None else [x + y for x, y in zip(a, b, strict=True)]


def decide(
    balancing: Balancing,
    jz: list[Tensor],
    losses: Tensor,
    counts: Tensor,
    rows: Any,
    cond: Any,
    replicas: Any = None,
) -> tuple[list[Tensor], Step]:
    """The update of the shared variables for one step, on any backend.

    Args:
        balancing: The balancing of the model.
        jz: Per-task gradients of the shared representation, pieces of
            shape (tasks, ...).
        losses: The (weighted) task losses, shape (tasks,).
        counts: Labelled samples per task in the batch.
        rows: The encoder's task-row provider (`keras_mtl.training.rows`):
            `through(dz)`, one backward pass (layer losses included);
            `jacobian(jz)`, per-task gradients of the shared variables;
            `gramian_rows(jz)`, their Gramian and the weighted update;
            `reg()`, the gradients of the encoder's layer losses or None.
        cond: The backend's conditional, `cond(pred, true_fn, false_fn)`.
        replicas: Under data parallelism, the step's collectives
            (`keras_mtl.training.replicas.Replicas`; `rows` then gives the
            global batch's rows): a representation-level Gramian is
            all-reduced, and a Jacobian method sees every replica's
            per-sample rows.

    Returns:
        The gradients of the shared variables and the method's `Step`.
    """
    method = balancing.balancer
    store = balancing.state
    representation = balancing.mode == "representation"
    if method.level == "jacobian":
        if representation:
            if replicas is None:
                step = jacobian_step(balancing, jz, losses, counts)
                return rows.through(step.shared), step
            step = jacobian_step(balancing, replicas.gather(jz), losses, counts)
            return rows.through(replicas.own(step.shared, jz)), step
        step = jacobian_step(balancing, rows.jacobian(jz), losses, counts)
        return plus(step.shared, rows.reg()), step

    def weigh() -> tuple[Any, Step]:
        """The method's step from this step's rows, and the update for
        given weights."""
        if representation:
            g = gramian(jz)
            g = g if replicas is None else replicas.sum([g])[0]
            step = gramian_step(balancing, g, losses, counts)
            return lambda w: rows.through(combine(w, jz)), step
        g, update = rows.gramian_rows(jz)
        return update, gramian_step(balancing, g, losses, counts)

    def recompute() -> tuple[list[Tensor], Step]:
        update, step = weigh()
        return update(step.weights), step

    def stored() -> Step:
        return Step(
            [],
            store.last_weights.value,
            store.last_heads.value,
            store.values(),
            store.last_gramian.value,
        )

    def reuse() -> tuple[list[Tensor], Step]:
        step = stored()
        return rows.through(combine(step.weights, jz)), step

    if balancing.update_every == 1 or balancing.phase == "recompute":
        return recompute()
    if balancing.phase == "reuse":
        return reuse()
    due = ops.equal(ops.mod(store.step.value, balancing.update_every), 0)
    if replicas is not None and not replicas.branching:
        # The replicas' collectives cannot sit inside a conditional here
        # (TensorFlow): the step recomputes and keeps what is due. The
        # updates are the same; the time is a recomputing step's.
        update, new = weigh()
        old = stored()
        step = Step(
            [],
            *(ops.where(due, a, b) for a, b in zip(new[1:3], old[1:3], strict=True)),
            [ops.where(due, a, b) for a, b in zip(new.state, old.state, strict=True)],
            ops.where(due, new.gramian, old.gramian),
        )
        return update(step.weights), step
    return cond(due, recompute, reuse)


def new_state_values(balancing: Balancing, step: Step) -> list[tuple[Any, Tensor]]:
    """(variable, new value) for every state variable after a step."""
    store = balancing.state
    pairs = list(zip(store.state_variables, step.state, strict=True))
    pairs += [
        (store.step, store.step.value + 1),
        (store.last_weights, step.weights),
        (store.last_heads, step.heads),
        (store.last_gramian, step.gramian),
    ]
    ok = ops.all(ops.stack([ops.all(ops.isfinite(x)) for _, x in pairs[:-4]] or [True]))
    ok = ops.logical_and(ok, ops.all(ops.isfinite(step.weights)))
    # A non-finite step leaves the state as it was (the guard skips it).
    return [
        (v, ops.where(ok, ops.reshape(ops.cast(x, v.dtype), v.shape), v.value))
        for v, x in pairs
    ]
