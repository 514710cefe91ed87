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


def _positions(variables: Sequence[Any]) -> dict[int, int]:
    return {id(v): i for i, v in enumerate(variables)}


def _inputs(model: Any, split: Any, x: Any, z: list[Any]) -> list[Any]:
    """The heads model's inputs: Z, then the raw inputs heads read."""
    if not split.passthrough:
        return list(z)
    if isinstance(x, dict):
        extra = [x[t.name] for t in split.passthrough]
    else:
        flat = x if isinstance(x, list | tuple) else [x]
        index = {id(t): i for i, t in enumerate(model.inputs)}
        extra = [flat[index[id(t)]] for t in split.passthrough]
    return list(z) + extra


def train_step(model: Any, state: Any, data: Any) -> tuple[dict, Any]:
    balancing: bal.Balancing = model._balancing
    split = balancing.split
    method = balancing.balancer
    k = balancing.num_tasks
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    tpos = _positions(model.trainable_variables)
    npos = _positions(model.non_trainable_variables)
    enc, heads = split.encoder, split.heads
    enc_t = [trainable[tpos[id(v)]] for v in enc.trainable_variables]
    enc_n = [non_trainable[npos[id(v)]] for v in enc.non_trainable_variables]
    head_t = [trainable[tpos[id(v)]] for v in heads.trainable_variables]
    head_n = [non_trainable[npos[id(v)]] for v in heads.non_trainable_variables]
    store = balancing.state
    store_vars = [
        *store.state_variables,
        store.step,
        store.epoch,
        store.last_weights,
        store.last_gramian,
    ]
    mapping = [(v, non_trainable[npos[id(v)]]) for v in store_vars]
    has_reg = {}

    def encoder_fn(variables: list[Any]) -> Any:
        z, new_n, reg = enc.stateless_call(
            variables, enc_n, x, training=True, return_losses=True
        )
        has_reg["encoder"] = bool(reg)
        total = sum(reg) if reg else jnp.zeros((), jnp.float32)
        return (list(z), total), new_n

    (z, _), enc_vjp, enc_n_new = jax.vjp(encoder_fn, enc_t, has_aux=True)

    def heads_fn(z_values: list[Any], variables: list[Any]) -> Any:
        preds, new_n, reg = heads.stateless_call(
            variables,
            head_n,
            _inputs(model, split, x, z_values),
            training=True,
            return_losses=True,
        )
        losses, counts = model.task_losses(y, preds, sample_weight)
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
    eye = jnp.eye(k, dtype=task_l.dtype)
    jz, jh = jax.vmap(lambda c: heads_vjp((c, zero)))(eye)
    head_grads = [j.sum(axis=0) for j in jh]
    if has_reg.get("heads"):
        reg_grads = heads_vjp((jnp.zeros_like(task_l), jnp.ones((), jnp.float32)))[1]
        head_grads = [g + r for g, r in zip(head_grads, reg_grads, strict=True)]
    count_vec = jnp.stack(counts)
    reg_cot = jnp.ones((), jnp.float32) if has_reg.get("encoder") else zero

    def through_encoder(dz: list[Any]) -> list[Any]:
        return enc_vjp((dz, reg_cot))[0]

    with keras.StatelessScope(state_mapping=mapping):
        if method.level == "jacobian":
            if balancing.mode == "representation":
                dz, weights, new_state, gram = bal.jacobian_step(
                    balancing, jz, task_l, count_vec
                )
                shared = through_encoder(dz)
            else:
                jenc = jax.vmap(lambda c: enc_vjp((c, zero))[0])(jz)
                shared, weights, new_state, gram = bal.jacobian_step(
                    balancing, jenc, task_l, count_vec
                )
                if has_reg.get("encoder"):
                    reg = enc_vjp(([jnp.zeros_like(t) for t in z], reg_cot))[0]
                    shared = [s + r for s, r in zip(shared, reg, strict=True)]
        else:

            def recompute() -> tuple:
                if balancing.mode == "representation":
                    w, new_state, gram = bal.gramian_step(
                        balancing, jz, task_l, count_vec
                    )
                    return through_encoder(bal.combine(w, jz)), w, new_state, gram
                jenc = jax.vmap(lambda c: enc_vjp((c, zero))[0])(jz)
                w, new_state, gram = bal.gramian_step(
                    balancing, jenc, task_l, count_vec
                )
                update = bal.combine(w, jenc)
                if has_reg.get("encoder"):
                    reg = enc_vjp(([jnp.zeros_like(t) for t in z], reg_cot))[0]
                    update = [u + r for u, r in zip(update, reg, strict=True)]
                return update, w, new_state, gram

            def reuse() -> tuple:
                w = store.last_weights.value
                return (
                    through_encoder(bal.combine(w, jz)),
                    w,
                    store.values(),
                    store.last_gramian.value,
                )

            if balancing.update_every == 1:
                shared, weights, new_state, gram = recompute()
            else:
                due = (store.step.value % balancing.update_every) == 0
                shared, weights, new_state, gram = jax.lax.cond(due, recompute, reuse)

        new_store = {
            id(v): value
            for v, value in zip(store.state_variables, new_state, strict=True)
        }
        new_store[id(store.step)] = store.step.value + 1
        new_store[id(store.last_weights)] = jnp.asarray(weights, jnp.float32)
        new_store[id(store.last_gramian)] = jnp.asarray(gram, jnp.float32)

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
    for v in store_vars:
        if id(v) in new_store:
            non_trainable[npos[id(v)]] = jnp.asarray(new_store[id(v)], v.dtype).reshape(
                v.shape
            )

    batch = jax.tree_util.tree_leaves(x)[0].shape[0]
    with keras.StatelessScope(
        state_mapping=list(zip(model.metrics_variables, metrics_vars, strict=True))
    ) as scope:
        bal.record(model, balancing, losses, counts, weights, gram, batch)
        logs = model.compute_metrics(x, y, preds, sample_weight)
    metrics_vars = [
        scope.get_current_value(v)
        if scope.get_current_value(v) is not None
        else v.value
        for v in model.metrics_variables
    ]
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)
