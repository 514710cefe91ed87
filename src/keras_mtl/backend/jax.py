"""JAX: per-task gradients by `vmap` over the VJP of a stateless call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras_mtl import balancing as bal


def host_call(
    fn: Callable[..., Sequence[Any]], inputs: Sequence[Any], shapes: Sequence[tuple]
) -> list[Any]:
    specs = [jax.ShapeDtypeStruct(tuple(s), jnp.float32) for s in shapes]

    def run(*arrays: Any) -> list[np.ndarray]:
        return list(fn(*[np.asarray(a) for a in arrays]))

    return list(jax.pure_callback(run, specs, *inputs, vmap_method="sequential"))


def segment_sum(data: Any, segment_ids: Any, num_segments: int) -> Any:
    return jax.ops.segment_sum(data, segment_ids, num_segments=num_segments)


def scan(f: Any, init: Any, xs: Any, y_like: Any, reverse: bool) -> tuple[Any, Any]:
    return jax.lax.scan(f, init, xs, reverse=reverse)


def train_step(model: Any, state: Any, data: Any) -> tuple[dict, Any]:
    balancing: bal.Balancing = model._balancing
    split = balancing.split
    k = balancing.num_tasks
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    tpos = {id(v): i for i, v in enumerate(model.trainable_variables)}
    npos = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    enc, heads = split.encoder, split.heads
    enc_t = [trainable[tpos[id(v)]] for v in enc.trainable_variables]
    enc_n = [non_trainable[npos[id(v)]] for v in enc.non_trainable_variables]
    head_t = [trainable[tpos[id(v)]] for v in heads.trainable_variables]
    head_n = [non_trainable[npos[id(v)]] for v in heads.non_trainable_variables]
    store = balancing.state
    has_reg: dict[str, bool] = {}
    mapping = [(v, non_trainable[npos[id(v)]]) for v in store.non_trainable_variables]
    kernel = None
    if split.kernel is not None:
        # The encoder's own per-task gradient kernels: no autodiff there.
        mapping += list(zip(enc.trainable_variables, enc_t, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            kernel = bal.KernelEncoder(model, split, x)

    def encoder_fn(variables: list[Any]) -> Any:
        z, new_n, reg = enc.stateless_call(
            variables, enc_n, x, training=True, return_losses=True
        )
        has_reg["encoder"] = bool(reg)
        total = sum(reg) if reg else jnp.zeros((), jnp.float32)
        z = list(z) if isinstance(z, list | tuple) else [z]
        return (z, total), new_n

    if kernel is None:
        (z, _), enc_vjp, enc_n_new = jax.vjp(encoder_fn, enc_t, has_aux=True)
    else:
        z, enc_n_new = kernel.z, enc_n

    def heads_fn(z_values: list[Any], variables: list[Any]) -> Any:
        preds, new_n, reg = heads.stateless_call(
            variables,
            head_n,
            bal.heads_inputs(model, split, x, z_values),
            training=True,
            return_losses=True,
        )
        losses, counts = model.task_losses(y, preds, sample_weight, training=True)
        has_reg["heads"] = bool(reg)
        total = sum(reg) if reg else jnp.zeros((), jnp.float32)
        return (bal.weighted_losses(model, losses), total), (
            preds,
            losses,
            counts,
            new_n,
        )

    (task_l, _), heads_vjp, (preds, losses, counts, head_n_new) = jax.vjp(
        heads_fn, z, head_t, has_aux=True
    )
    zero = jnp.zeros((), jnp.float32)
    jz, jh = jax.vmap(lambda c: heads_vjp((c, zero)))(jnp.eye(k, dtype=task_l.dtype))
    reg_cot = jnp.ones((), jnp.float32) if has_reg.get("encoder") else zero

    def through_encoder(dz: list[Any]) -> list[Any]:
        if kernel is not None:
            return kernel.through(dz)
        return enc_vjp((dz, reg_cot))[0]

    def encoder_jacobian(pieces: list[Any]) -> list[Any]:
        if kernel is not None:
            return kernel.jacobian(pieces)
        return jax.vmap(lambda c: enc_vjp((c, zero))[0])(pieces)

    def encoder_reg() -> list[Any] | None:
        if not has_reg.get("encoder"):
            return None
        return through_encoder([jnp.zeros_like(t) for t in z])

    with keras.StatelessScope(state_mapping=mapping):
        shared, step = bal.decide(
            balancing,
            jz,
            task_l,
            jnp.stack(counts),
            through_encoder,
            encoder_jacobian,
            encoder_reg,
            jax.lax.cond,
        )
        updates = bal.new_state_values(balancing, step)
    head_grads = bal.combine(step.heads, jh)
    if has_reg.get("heads"):
        reg = heads_vjp((jnp.zeros_like(task_l), jnp.ones((), jnp.float32)))[1]
        head_grads = [g + r for g, r in zip(head_grads, reg, strict=True)]

    grads = [jnp.zeros_like(v) for v in trainable]
    for v, g in zip(enc.trainable_variables, shared, strict=True):
        grads[tpos[id(v)]] = g
    for v, g in zip(heads.trainable_variables, head_grads, strict=True):
        grads[tpos[id(v)]] = g
    trainable, optimizer_vars = model.optimizer.stateless_apply(
        optimizer_vars, grads, trainable
    )
    non_trainable = list(non_trainable)
    for v, value in zip(enc.non_trainable_variables, enc_n_new, strict=True):
        non_trainable[npos[id(v)]] = value
    for v, value in zip(heads.non_trainable_variables, head_n_new, strict=True):
        non_trainable[npos[id(v)]] = value
    for v, value in updates:
        non_trainable[npos[id(v)]] = value

    batch = jax.tree_util.tree_leaves(x)[0].shape[0]
    with keras.StatelessScope(
        state_mapping=list(zip(model.metrics_variables, metrics_vars, strict=True))
    ) as scope:
        bal.record(model, balancing, losses, counts, step.weights, step.gramian, batch)
        logs = model.compute_metrics(x, y, preds, sample_weight)
    metrics_vars = [
        value if (value := scope.get_current_value(v)) is not None else v.value
        for v in model.metrics_variables
    ]
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def guard_optimizer(optimizer: Any) -> None:
    original = type(optimizer).stateless_apply.__get__(optimizer)

    def stateless_apply(
        optimizer_variables: Any, grads: Any, trainable_variables: Any
    ) -> tuple[Any, Any]:
        report = optimizer.__dict__.get("_mtl_report")
        if report is None:
            return original(optimizer_variables, grads, trainable_variables)
        from keras_mtl.backend import all_finite

        ok = all_finite(grads)
        report(ok)
        new_t, new_o = original(optimizer_variables, grads, trainable_variables)
        keep = lambda new, old: [  # noqa: E731
            jnp.where(ok, n, o) for n, o in zip(new, old, strict=True)
        ]
        return keep(new_t, trainable_variables), keep(new_o, optimizer_variables)

    object.__setattr__(optimizer, "stateless_apply", stateless_apply)


def task_gradients(
    losses_of: Callable[[list[Any]], Any], values: list[Any]
) -> list[np.ndarray]:
    """The Jacobian of the task losses `losses_of(values)` (a (tasks,)
    vector) with respect to `values`: one (tasks, *shape) array per value."""
    return [np.asarray(j) for j in jax.jacrev(losses_of)(list(values))]
