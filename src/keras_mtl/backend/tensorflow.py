"""TensorFlow primitives: VJPs on a persistent GradientTape, host calls,
the strategy's reductions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf


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
        # A fold keeps only the last carry (`tf.scan` would stack the carry
        # of every step).
        fold = tf.foldr if reverse else tf.foldl
        return fold(lambda carry, x: f(carry, x)[0], xs, initializer=init), None

    def step_with_y(state: Any, x: Any) -> Any:
        return f(state[0], x)

    carries, ys = tf.scan(step_with_y, xs, initializer=(init, y_like), reverse=reverse)
    last = 0 if reverse else -1
    return tf.nest.map_structure(lambda c: c[last], carries), ys


#: Variables keep their values between steps: gradients are applied to them.
STATELESS = False


class Pullback:
    """Backward passes through one forward call recorded on a persistent
    tape (any number of them)."""

    def __init__(self, tape: Any, out: Any, leaves: list[Any], structure: Any) -> None:
        self.tape = tape
        self.out = tf.nest.flatten(out)
        self.leaves = leaves
        self.structure = structure

    def __call__(self, cotangent: Any) -> Any:
        grads = self.tape.gradient(
            self.out,
            self.leaves,
            output_gradients=tf.nest.flatten(cotangent),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return tf.nest.pack_sequence_as(self.structure, grads)

    def batched(self, cotangents: Any, reduce: Callable | None = None) -> Any:
        flat = tf.nest.flatten(cotangents)
        rows = [self([c[i] for c in flat]) for i in range(flat[0].shape[0])]
        if reduce is not None:
            rows = [reduce(row) for row in rows]
        columns = zip(*[tf.nest.flatten(row) for row in rows], strict=True)
        stacked = [tf.stack(column) for column in columns]
        return tf.nest.pack_sequence_as(rows[0], stacked)


def vjp(fn: Callable[[Any], tuple[Any, Any]], primals: Any) -> tuple[Any, Any, Any]:
    leaves = [tf.convert_to_tensor(t) for t in tf.nest.flatten(primals)]
    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        tape.watch(leaves)
        out, aux = fn(tf.nest.pack_sequence_as(primals, leaves))
    return out, aux, Pullback(tape, out, leaves, primals)


def _dense(fn: Callable[[], Any]) -> Callable[[], Any]:
    """`fn` with sparse gradients (`tf.IndexedSlices`, a tape's gradient of
    an embedding lookup) made dense, so both branches of a `tf.cond` agree."""

    def run() -> Any:
        return tf.nest.map_structure(
            lambda t: tf.convert_to_tensor(t) if isinstance(t, tf.IndexedSlices) else t,
            fn(),
            expand_composites=False,
        )

    return run


def accelerator() -> bool:
    """Whether steps run on an accelerator (GPU or TPU)."""
    return bool(
        tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    )


def cond(pred: Any, when_true: Callable, when_false: Callable) -> Any:
    return tf.cond(pred, _dense(when_true), _dense(when_false))


def no_grad() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def _replica_context() -> Any:
    """The `tf.distribute` replica context this step runs in, or None."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    return tf.distribute.get_replica_context()


def replicas() -> int:
    """How many replicas run this step (1 outside `tf.distribute`)."""
    context = _replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


#: A replica's collective inside `tf.cond` fails (its merge_call cannot
#: run in a branch), so a step with replicas computes both sides.
COLLECTIVES_IN_COND = False

#: How the optimizer combines the replicas' gradients: Keras applies them
#: in the replica context, where the strategy sums them.
OPTIMIZER_REDUCTION = "sum"


def replica_index() -> Any:
    """This replica's position among the replicas (0 outside `tf.distribute`)."""
    context = _replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


def all_sum(tensors: list[Any]) -> list[Any]:
    """Each tensor summed over the replicas, in one collective."""
    context = _replica_context()
    if context is None or not tensors:
        return list(tensors)
    return list(context.all_reduce("SUM", list(tensors)))


def all_gather(tensor: Any, axis: int) -> Any:
    """Every replica's `tensor` joined along `axis`, in replica order."""
    context = _replica_context()
    return tensor if context is None else context.all_gather(tensor, axis)


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


def guarded_apply(
    apply: Callable[[Any, Any], Any],
    grads: Any,
    variables: Any,
    all_finite: Callable[[Any], Any],
    report: Callable[[Any], None] | None,
) -> Any:
    """`apply(grads, variables)` when every replica's gradients are finite
    (all replicas step or skip together), with the flag passed to
    `report`; always when `report` is None."""
    if report is None:
        return apply(grads, variables)
    ok = all_finite(grads)
    context = _replica_context()
    if context is not None:
        ok = context.all_reduce("SUM", tf.cast(tf.logical_not(ok), tf.int32)) == 0
    report(ok)
    if (
        context is not None
        and not tf.__internal__.distribute.strategy_supports_no_merge_call()
    ):
        # The cond runs in the cross-replica context, as the optimizer's
        # update all-reduces (Keras's LossScaleOptimizer does the same).
        def across(strategy: Any, ok: Any, grads: Any, variables: Any) -> Any:
            def step() -> Any:
                strategy.extended.call_for_each_replica(apply, args=(grads, variables))
                return tf.constant(True)

            first = strategy.experimental_local_results(ok)[0]
            return tf.cond(first, step, lambda: tf.constant(False))

        return context.merge_call(across, args=(ok, grads, variables))

    def step() -> Any:
        apply(grads, variables)
        return tf.constant(True)

    return tf.cond(ok, step, lambda: tf.constant(False))


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
