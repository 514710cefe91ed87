"""The train step of a model whose balancer needs per-task gradients.

Written once for every backend, over the primitives of
`keras_mtl.backend` (a VJP, a batched backward pass, a host call, a
conditional): split the variables at the shared representation, take the
task rows from a provider (`keras_mtl.training.rows`), let the method
decide the shared update (`keras_mtl.training.algebra.decide`), add each
head's own gradient, apply, and record. Only how the result is applied
differs: JAX threads every value through the step (`STATELESS`), the
other backends assign to their variables.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from keras_mtl import backend as mtl_backend
from keras_mtl.models.rules import perturbed, zero_perturbations
from keras_mtl.training.algebra import (
    Factored,
    Step,
    combine,
    decide,
    new_state_values,
)
from keras_mtl.training.balancing import (
    Balancing,
    finite_factor,
    weighted_loss,
    weighted_losses,
)
from keras_mtl.training.replicas import Replicas, ReplicatedRows
from keras_mtl.training.rows import heads_inputs, rows_for

Tensor = Any


class Values:
    """The value of each model variable for this step, by variable."""

    def __init__(
        self, model: Any, trainable: list[Tensor], non_trainable: list[Tensor]
    ) -> None:
        self.trainable = list(trainable)
        self.non_trainable = list(non_trainable)
        self.tpos = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self.npos = {id(v): i for i, v in enumerate(model.non_trainable_variables)}

    def of(self, variables: list[Any]) -> list[Tensor]:
        """The values of trainable variables."""
        return [self.trainable[self.tpos[id(v)]] for v in variables]

    def of_non_trainable(self, variables: list[Any]) -> list[Tensor]:
        return [self.non_trainable[self.npos[id(v)]] for v in variables]

    def updated(self, updates: list[tuple[Any, Tensor]]) -> list[Tensor]:
        """The non-trainable values after `updates` (variable, value)."""
        out = list(self.non_trainable)
        for var, value in updates:
            out[self.npos[id(var)]] = value
        return out


class Outcome(NamedTuple):
    """What one balanced step computed, before anything is applied."""

    grads: list[Tensor]  # one per model.trainable_variables
    updates: list[tuple[Any, Tensor]]  # (non-trainable variable, new value)
    preds: Any
    losses: list[Tensor]  # this replica's masked means
    counts: list[Tensor]  # this replica's labelled counts
    step: Step
    reported: list[Tensor]  # the global batch's task losses
    reduced: bool = False  # grads already reduced across processes


def _replicas(prims: ModuleType) -> Replicas | None:
    """The step's collectives where replicas each run it on their share of
    the batch (`tf.distribute`, `torch.distributed`), else None."""
    replicas = getattr(prims, "replicas", None)
    n = 1 if replicas is None else replicas()
    return Replicas(prims, n) if n > 1 else None


def balanced_gradients(
    model: Any, prims: ModuleType, values: Values, x: Any, y: Any, sample_weight: Any
) -> Outcome:
    """The gradient of every trainable variable for one balanced step.

    Shared variables get the method's update from the task rows; each head
    gets its own task's gradient, scaled by the method's head factor.
    """
    balancing: Balancing = model._balancing
    split = balancing.split
    k = balancing.num_tasks
    enc, heads = split.encoder, split.heads
    head_n = values.of_non_trainable(heads.non_trainable_variables)
    replicas = _replicas(prims)
    rows = rows_for(
        prims,
        model,
        split,
        values.of(enc.trainable_variables),
        values.of_non_trainable(enc.non_trainable_variables),
        x,
    )
    if replicas is not None:
        rows = ReplicatedRows(rows, replicas)
    head_reg = {"present": False}

    def heads_pass(primals: list[Any]) -> tuple[Any, Any, list, Any, Any]:
        z, variables = primals
        preds, new_n, reg = heads.stateless_call(
            variables,
            head_n,
            heads_inputs(model, split, x, z),
            training=True,
            return_losses=True,
        )
        losses, counts = model.task_losses(y, preds, sample_weight, training=True)
        head_reg["present"] = bool(reg)
        return preds, new_n, reg, losses, counts

    def heads_fn(primals: list[Any]) -> tuple[Any, Any]:
        preds, new_n, reg, losses, counts = heads_pass(primals)
        total = sum(reg) if reg else ops.zeros((), "float32")
        return (weighted_losses(model, losses), total), (preds, losses, counts, new_n)

    primals = [list(rows.z), values.of(heads.trainable_variables)]
    owned = _owned(model, split)

    def with_own(task: int, own: list[Any]) -> list[Any]:
        """The heads' values with task `task`'s own variables replaced."""
        full = list(primals[1])
        for position, value in zip(owned[task], own, strict=True):
            full[position] = value
        return full

    def own_of(task: int) -> list[Any]:
        return [primals[1][i] for i in owned[task]]

    def task_loss_of(task: int, z: Any, own: list[Any]) -> Any:
        losses = heads_pass([z, with_own(task, own)])[3]
        return weighted_loss(model, losses[task], task, finite)

    readers = _factoring(model, prims, replicas, rows.z)
    order: list = []  # (rule, inputs, pre-activation) of each reader's call
    with perturbed(readers or [], None, order):
        (task_l, _), aux, pullback = prims.vjp(heads_fn, primals)
    preds, losses, counts, head_n_new = aux
    tasks = ops.eye(k, dtype="float32")
    task_l, reported, global_counts = ops.stop_gradient(task_l), losses, counts
    if replicas is not None:
        # Each row pulled back is this replica's share of a global row.
        shares, reported, global_counts = replicas.losses(losses, counts)
        tasks = tasks * shares
        task_l = weighted_losses(model, reported)
    gradients = getattr(prims, "gradients", None)
    if gradients is not None:  # read by `task_loss_of`, once for every task
        finite = finite_factor(ops.stack(losses))
    by_task = None  # (rows of Z, each task's gradients of its own head variables)
    if readers and _read_once(readers, order, rows.z[0]):
        # Z's rows factored (`Factored`): each task's cotangents of the
        # readers' pre-activations and the heads' gradients, Z held fixed.
        extra = zero_perturbations(order)

        def task_cotangents(task: int) -> Any:
            def fn(parts: list[Any]) -> Any:
                with perturbed(readers, parts[1], []):
                    return task_loss_of(task, primals[0], parts[0])

            return fn

        per_task = gradients(
            [task_cotangents(t) for t in range(k)],
            [[own_of(t), extra] for t in range(k)],
        )
        kernels = values.of([rule.kernel for rule, _, _ in order])
        cots = ops.stack([ops.concatenate(g[1], axis=-1) for g in per_task])
        jz = Factored(cots, ops.concatenate(kernels, axis=-1))
        by_task = (jz, [g[0] for g in per_task])
    elif gradients is not None:
        per_task = gradients(
            [
                (lambda parts, t=t: task_loss_of(t, parts[0], parts[1]))
                for t in range(k)
            ],
            [[primals[0], own_of(t)] for t in range(k)],
        )
        if per_task is not None:
            jz = [
                ops.stack([g[0][i] for g in per_task]) for i in range(len(primals[0]))
            ]
            by_task = (jz, [g[1] for g in per_task])
    if by_task is None:
        jz, jh = pullback.batched((tasks, ops.zeros((k,), "float32")))
        own = None
    else:  # row t: task t's loss alone
        jz, own = by_task
        if replicas is not None:  # scaled as row t of `tasks` (this replica's share)
            jz = [ops.reshape(shares, (k,) + (1,) * (len(r.shape) - 1)) * r for r in jz]
            own = [[shares[t] * g for g in own[t]] for t in range(k)]
    state_vars = balancing.state.non_trainable_variables
    mapping = list(zip(state_vars, values.of_non_trainable(state_vars), strict=True))
    with keras.StatelessScope(state_mapping=mapping):
        shared, step = decide(
            balancing,
            jz,
            task_l,
            ops.stack(global_counts),
            rows,
            prims.cond,
            replicas,
        )
        updates = new_state_values(balancing, step)
    if own is None:
        head_grads = combine(step.heads, jh)
    else:
        head_grads = _own_combined(step.heads, owned, own, primals[1])
    if replicas is not None:
        head_grads = replicas.sum(head_grads)
    if head_reg["present"]:
        reg = pullback((ops.zeros_like(task_l), ops.ones((), "float32")))[1]
        reg = reg if replicas is None else replicas.mean(reg)
        head_grads = [g + r for g, r in zip(head_grads, reg, strict=True)]
    by_id = {id(v): g for v, g in zip(enc.trainable_variables, shared, strict=True)}
    by_id.update(
        {id(v): g for v, g in zip(heads.trainable_variables, head_grads, strict=True)}
    )
    grads = [
        by_id[id(v)] if id(v) in by_id else ops.zeros(v.shape, v.dtype)
        for v in model.trainable_variables
    ]
    if replicas is not None:
        grads = replicas.applied(grads)
    updates += list(zip(enc.non_trainable_variables, rows.non_trainable, strict=True))
    updates += list(zip(heads.non_trainable_variables, head_n_new, strict=True))
    reduced = replicas is not None and replicas.skips_optimizer_reduction
    return Outcome(grads, updates, preds, losses, counts, step, reported, reduced)


def _owned(model: Any, split: Any) -> list[list[int]]:
    """For each task, the positions in `split.heads.trainable_variables` of
    the variables its loss reaches (`Split.task_variables` of its output)."""
    position = {id(v): i for i, v in enumerate(split.heads.trainable_variables)}
    return [
        [position[id(v)] for v in split.task_variables[out] if id(v) in position]
        for out in model._task_outputs
    ]


def _own_combined(
    factors: Tensor, owned: list[list[int]], own: list[list[Tensor]], like: list
) -> list[Tensor]:
    """sum_t factor_t x (task t's gradient) for each head variable, from each
    task's gradients of only the variables it reaches (`_owned`): no task's
    zeros of the other heads are stacked or summed."""
    out: list[Any] = [None] * len(like)
    for task, (positions, grads) in enumerate(zip(owned, own, strict=True)):
        for position, grad in zip(positions, grads, strict=True):
            part = ops.cast(factors[task], grad.dtype) * grad
            out[position] = part if out[position] is None else out[position] + part
    return [
        ops.zeros(v.shape, v.dtype) if g is None else g
        for g, v in zip(out, like, strict=True)
    ]


def _factoring(
    model: Any, prims: ModuleType, replicas: Any, z: list[Tensor]
) -> list[Any] | None:
    """The rules of Z's readers (`Split.readers`) where a representation-level
    Gramian method takes Z's rows factored (`Factored`), else None: on a
    backend with per-task gradients (`gradients`: JAX on the CPU), one
    replica, and where the factors cost fewer products than the rows (rows:
    tasks x batch x features x (units / tasks + tasks); factors: units^2 x
    (features + tasks x batch) + tasks^2 x batch x units)."""
    balancing: Balancing = model._balancing
    readers = balancing.split.readers
    if (
        readers is None
        or replicas is not None
        or getattr(prims, "gradients", None) is None
        or prims.accelerator()
        or balancing.mode != "representation"
        or balancing.balancer.level != "gramian"
    ):
        return None
    k = balancing.num_tasks
    batch, features = (int(n) for n in z[0].shape)
    units = sum(int(rule.kernel.shape[-1]) for rule in readers)
    rows = batch * features * (units + k * k)
    factors = units * units * (features + k * batch) + k * k * batch * units
    return readers if factors < rows else None


def _read_once(readers: list[Any], order: list, z: Tensor) -> bool:
    """Whether the heads' pass called each reader once, on Z's shape."""
    return sorted(id(rule) for rule, _, _ in order) == sorted(
        id(rule) for rule in readers
    ) and all(tuple(inputs.shape) == tuple(z.shape) for _, inputs, _ in order)


def record(model: Any, outcome: Outcome, x: Any, y: Any, sample_weight: Any) -> dict:
    """Updates the loss trackers, the balancer's metrics and the task
    metrics (stateful calls; on JAX inside a scope that collects them)."""
    balancing: Balancing = model._balancing
    losses = [ops.stop_gradient(v) for v in outcome.losses]
    reported = [ops.stop_gradient(v) for v in outcome.reported]
    nominal = ops.sum(weighted_losses(model, reported))
    batch = ops.shape(keras.tree.flatten(x)[0])[0]
    model._loss_tracker.update_state(nominal, sample_weight=batch)
    model._compile_metrics.update_losses(losses, outcome.counts)
    model._compile_metrics.update_balance(
        balancing.metric_values(outcome.step.weights, outcome.step.gramian)
    )
    preds = keras.tree.map_structure(ops.stop_gradient, outcome.preds)
    return model.compute_metrics(x, y, preds, sample_weight)


def train_step(model: Any, *args: Any) -> Any:
    """The balanced train step, with the arguments Keras passes on the
    running backend: `(state, data)` on JAX, `(data)` elsewhere."""
    prims = mtl_backend.module()
    if prims.STATELESS:
        state, data = args
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        values = Values(model, trainable, non_trainable)
    else:
        (data,) = args
        values = Values(
            model,
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    outcome = balanced_gradients(model, prims, values, x, y, sample_weight)
    if not prims.STATELESS:
        with prims.no_grad():
            grads = [ops.stop_gradient(g) for g in outcome.grads]
            if outcome.reduced:
                # Every process holds the global gradients already.
                with mtl_backend.reduced():
                    model.optimizer.apply(grads, model.trainable_variables)
            else:
                model.optimizer.apply(grads, model.trainable_variables)
            for var, value in outcome.updates:
                var.assign(value)
            return record(model, outcome, x, y, sample_weight)
    trainable, optimizer_vars = model.optimizer.stateless_apply(
        optimizer_vars, outcome.grads, trainable
    )
    non_trainable = values.updated(outcome.updates)
    with keras.StatelessScope(
        state_mapping=list(zip(model.metrics_variables, metrics_vars, strict=True))
    ) as scope:
        logs = record(model, outcome, x, y, sample_weight)
    metrics_vars = [
        value if (value := scope.get_current_value(v)) is not None else v.value
        for v in model.metrics_variables
    ]
    return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)


def phased_train_function(model: Any) -> Any:
    """For a Gramian method with `update_every` > 1 on a backend that
    compiles whole steps (`jit_step`, JAX): a train function that runs one
    of two compiled steps, the one that recomputes the weights or the one
    that reuses them, chosen on the host from the method's step counter;
    None elsewhere (one step with a conditional). XLA on CPU runs
    convolutions inside a conditional's branch about 10x slower than
    outside one, which made a conv trunk's `update_every=4` step slower
    than recomputing every step (docs/benchmarks.md)."""
    prims = mtl_backend.module()
    balancing = getattr(model, "_balancing", None)
    if (
        getattr(prims, "jit_step", None) is None
        or balancing is None
        or balancing.balancer.level != "gramian"
        or balancing.update_every == 1
        or not balancing.phased
        or model.run_eagerly
        or not model.jit_compile
        or keras.distribution.distribution() is not None
    ):
        return None
    index = [id(v) for v in model.non_trainable_variables].index(
        id(balancing.state.step)
    )

    def traced(phase: str) -> Any:
        def step(state: Any, data: Any) -> Any:
            balancing.phase = phase
            try:
                return model.train_step(state, data)
            finally:
                balancing.phase = None

        return prims.jit_step(step)

    steps = {phase: traced(phase) for phase in ("recompute", "reuse")}

    def step_function(state: Any, data: Any) -> Any:
        count = int(np.asarray(state[1][index]))
        due = count % balancing.update_every == 0
        return steps["recompute" if due else "reuse"](state, data)

    return model._make_function(step_function)
