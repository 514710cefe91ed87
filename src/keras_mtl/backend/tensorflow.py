"""TensorFlow: per-task gradients with a persistent GradientTape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import balancing as bal


def host_call(
    fn: Callable[..., Sequence[Any]], inputs: Sequence[Any], shapes: Sequence[tuple]
) -> list[Any]:
    def run(*arrays: Any) -> list[np.ndarray]:
        return [np.asarray(o, np.float32) for o in fn(*arrays)]

    outs = tf.numpy_function(
        run,
        [tf.convert_to_tensor(i) for i in inputs],
        [tf.float32] * len(shapes),
        stateful=True,
    )
    return [tf.ensure_shape(o, s) for o, s in zip(outs, shapes, strict=True)]


def segment_sum(data: Any, segment_ids: Any, num_segments: int) -> Any:
    return tf.math.unsorted_segment_sum(data, segment_ids, num_segments)


def scan(f: Any, init: Any, xs: Any, y_like: Any, reverse: bool) -> tuple[Any, Any]:
    if y_like is None:

        def step(carry: Any, x: Any) -> Any:
            return f(carry, x)[0]

        carries = tf.scan(step, xs, initializer=init, reverse=reverse)
        last = 0 if reverse else -1
        return tf.nest.map_structure(lambda c: c[last], carries), None

    def step_with_y(state: Any, x: Any) -> Any:
        return f(state[0], x)

    carries, ys = tf.scan(step_with_y, xs, initializer=(init, y_like), reverse=reverse)
    last = 0 if reverse else -1
    return tf.nest.map_structure(lambda c: c[last], carries), ys


def _zeros_for_none(grads: Sequence[Any], variables: Sequence[Any]) -> list[Any]:
    return [
        tf.zeros(v.shape, v.dtype) if g is None else g
        for g, v in zip(grads, variables, strict=True)
    ]


def train_step(model: Any, data: Any) -> dict:
    balancing: bal.Balancing = model._balancing
    if replicas() > 1:
        raise ValueError(
            f"The balancer {balancing.balancer.key!r} works on per-task "
            f"gradients, which are not all-reduced across the {replicas()} "
            "replicas of a tf.distribute strategy: train it on one device, or "
            "on the JAX backend with keras.distribution (docs/distribution.md)."
        )
    split = balancing.split
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    enc, heads = split.encoder, split.heads
    enc_vars = list(enc.trainable_variables)
    head_vars = list(heads.trainable_variables)
    kernel = None
    if split.kernel is not None:
        # The encoder's own per-task gradient kernels: no autodiff there.
        kernel = bal.KernelEncoder(model, split, x)
    with tf.GradientTape(persistent=True) as tape:
        if kernel is None:
            z = enc(x, training=True)
            z = list(z) if isinstance(z, list | tuple) else [z]
            enc_reg = tf.add_n(enc.losses) if enc.losses else None
        else:
            z, enc_reg = list(kernel.z), None
            for t in z:
                tape.watch(t)
        preds = heads(bal.heads_inputs(model, split, x, z), training=True)
        losses, counts = model.task_losses(y, preds, sample_weight, training=True)
        task_l = bal.weighted_losses(model, losses)
        head_reg = tf.add_n(heads.losses) if heads.losses else None
    jz = tape.jacobian(task_l, z)
    jh = _zeros_for_none(
        tape.jacobian(task_l, head_vars),
        [tf.zeros((balancing.num_tasks, *v.shape)) for v in head_vars],
    )

    def through_encoder(dz: list[Any]) -> list[Any]:
        if kernel is not None:
            return kernel.through(dz)
        targets, cots = list(z), list(dz)
        if enc_reg is not None:
            targets.append(enc_reg)
            cots.append(tf.ones_like(enc_reg))
        return _zeros_for_none(
            tape.gradient(targets, enc_vars, output_gradients=cots), enc_vars
        )

    def encoder_jacobian(pieces: list[Any]) -> list[Any]:
        if kernel is not None:
            return kernel.jacobian(pieces)
        rows = [
            _zeros_for_none(
                tape.gradient(z, enc_vars, output_gradients=[p[t] for p in pieces]),
                enc_vars,
            )
            for t in range(balancing.num_tasks)
        ]
        return [tf.stack(column) for column in zip(*rows, strict=True)]

    def encoder_reg() -> list[Any] | None:
        if enc_reg is None:
            return None
        return _zeros_for_none(tape.gradient(enc_reg, enc_vars), enc_vars)

    shared, step = bal.decide(
        balancing,
        jz,
        task_l,
        tf.stack(counts),
        through_encoder,
        encoder_jacobian,
        encoder_reg,
        lambda pred, a, b: tf.cond(pred, a, b),
    )
    head_grads = bal.combine(step.heads, jh)
    if head_reg is not None:
        reg = _zeros_for_none(tape.gradient(head_reg, head_vars), head_vars)
        head_grads = [g + r for g, r in zip(head_grads, reg, strict=True)]
    by_id = {id(v): g for v, g in zip(enc_vars, shared, strict=True)}
    by_id.update({id(v): g for v, g in zip(head_vars, head_grads, strict=True)})
    variables = model.trainable_variables
    grads = [by_id.get(id(v), tf.zeros(v.shape, v.dtype)) for v in variables]
    model.optimizer.apply(grads, variables)
    for var, value in bal.new_state_values(balancing, step):
        var.assign(value)
    batch = tf.shape(tf.nest.flatten(x)[0])[0]
    bal.record(model, balancing, losses, counts, step.weights, step.gramian, batch)
    return model.compute_metrics(x, y, preds, sample_weight)


def _replica_context() -> Any:
    """The `tf.distribute` replica context this step runs in, or None."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    return tf.distribute.get_replica_context()


def replicas() -> int:
    """How many replicas run this step (1 outside `tf.distribute`)."""
    context = _replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def global_task_losses(
    losses: list[Any], counts: list[Any], training: bool
) -> tuple[list[Any], list[Any], float]:
    """Each task's masked mean over the global batch, from every replica's
    share: the sums of labelled losses and the labelled counts all-reduced
    (the all-reduce passes gradients back to every replica). The loss
    scale is 1/replicas: the optimizer sums the replicas' gradients, and
    Keras reports the loss times replicas. In evaluation too: the strategy
    runs every replica's step together."""
    del training
    n = replicas()
    if n == 1:
        return losses, counts, 1.0
    context = tf.distribute.get_replica_context()
    total = context.all_reduce("SUM", tf.stack(counts))
    sums = context.all_reduce(
        "SUM",
        tf.stack([loss * count for loss, count in zip(losses, counts, strict=True)]),
    )
    return tf.unstack(sums / tf.maximum(total, 1.0)), tf.unstack(total), 1.0 / n


def guard_optimizer(optimizer: Any) -> None:
    original = type(optimizer).apply.__get__(optimizer)

    def apply(grads: Any, trainable_variables: Any = None) -> Any:
        report = optimizer.__dict__.get("_mtl_report")
        if report is None:
            return original(grads, trainable_variables)
        from keras_mtl.backend import all_finite

        ok = all_finite(grads)
        context = _replica_context()
        if context is not None:
            # Every replica skips or steps together.
            ok = context.all_reduce("SUM", tf.cast(tf.logical_not(ok), tf.int32)) == 0
        if (
            context is not None
            and not tf.__internal__.distribute.strategy_supports_no_merge_call()
        ):
            # The cond runs in the cross-replica context, as the optimizer's
            # update all-reduces (Keras's LossScaleOptimizer does the same).
            report(ok)

            def across(strategy: Any, ok: Any, grads: Any, variables: Any) -> Any:
                def step() -> Any:
                    strategy.extended.call_for_each_replica(
                        original, args=(grads, variables)
                    )
                    return tf.constant(True)

                first = strategy.experimental_local_results(ok)[0]
                return tf.cond(first, step, lambda: tf.constant(False))

            return context.merge_call(across, args=(ok, grads, trainable_variables))
        report(ok)

        def step() -> Any:
            original(grads, trainable_variables)
            return tf.constant(True)

        return tf.cond(ok, step, lambda: tf.constant(False))

    object.__setattr__(optimizer, "apply", apply)


def feedable(data: keras.utils.PyDataset) -> tf.data.Dataset:
    """A PyDataset of varying batch shapes as a tf.data.Dataset whose shapes
    are open in every dimension, prefetching `max_queue_size` batches."""
    first = data[0]
    signature = keras.tree.map_structure(
        lambda a: tf.TensorSpec([None] * np.ndim(a), tf.as_dtype(np.asarray(a).dtype)),
        first,
    )

    def batches() -> Any:
        # Called when an epoch starts iterating, after `set_epoch`.
        for i in range(len(data)):
            yield data[i]

    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(data)))
    return dataset.prefetch(max(1, int(getattr(data, "max_queue_size", 2))))


def task_gradients(
    losses_of: Callable[[list[Any]], Any], values: list[Any]
) -> list[np.ndarray]:
    """The Jacobian of the task losses `losses_of(values)` (a (tasks,)
    vector) with respect to `values`: one (tasks, *shape) array per value."""
    leaves = [tf.Variable(tf.convert_to_tensor(v)) for v in values]
    with tf.GradientTape(persistent=True) as tape:
        losses = losses_of([leaf.read_value() for leaf in leaves])
        parts = [losses[i] for i in range(int(losses.shape[0]))]
    rows = [_zeros_for_none(tape.gradient(p, leaves), leaves) for p in parts]
    del tape
    return [np.stack([np.asarray(row[k]) for row in rows]) for k in range(len(leaves))]
