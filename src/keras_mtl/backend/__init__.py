"""Backend primitives: the only code that knows which backend runs.

One module per backend (`jax`, `torch`, `tensorflow`), each holding small
primitives and nothing of the library's own logic (it imports no other
module of it). The balanced train step is written once over them, in
`keras_mtl.training`. Each module provides:

* `STATELESS`: whether Keras threads variable values through the step (JAX)
  or the variables hold them (PyTorch, TensorFlow);
* `vjp(fn, primals) -> (out, aux, pullback)`: `fn(primals)` returns
  `(out, aux)`; `pullback(cotangent)` is one backward pass to the primals,
  `pullback.batched(cotangents, reduce=None)` one per row of cotangents
  stacked on a leading axis (the per-task rows), each row's result through
  `reduce` where given (JAX: inside that row's pass, so what it reduces is
  freed before the next pass);
* `cond(pred, true_fn, false_fn)` and `no_grad()`;
* `accelerator()`: whether steps run on a GPU or TPU (where small batched
  solves beat a host call);
* `host_call(fn, inputs, shapes)`: run a NumPy function on the host from
  inside a compiled step (the solvers of the balancing methods are NumPy);
* `scan`, `segment_sum`: loops and scatter-adds of the LSTM kernels;
* optionally `gradients(fns, primals)`: each scalar function's gradient to
  its own primals, one VJP each (JAX on the CPU: a task's pass runs through
  only its own head; None on accelerators, where one batched pullback
  serves);
* optionally `global_task_losses`, `replicas`, `reduce_gradients`,
  `all_sum`, `all_gather`, `replica_index`, `OPTIMIZER_REDUCTION`,
  `COLLECTIVES_IN_COND` (data parallelism's collectives), `processes`,
  `barrier`, `first_process_says`, `fetch`, `gather_processes`,
  `local_part` (several processes),
  `guarded_apply`, `rng_state`, `set_rng_state`, `restorer`, `feedable`:
  what differs
  under data parallelism, in how a guarded optimizer steps, in random state
  and in input pipelines; `jit_step`, where whole train steps are compiled
  (JAX), so that `update_every`'s two kinds of step compile apart;
  `STATIC_SHAPES`, where shapes are known at tracing and unused results are
  dropped (JAX), which layer rules inside autodiff need; `max_pool`, where
  the backend pools faster than Keras's layers do (JAX: a backward pass
  without select-and-scatter), and `dot_product_attention`,
  where it attends faster on the CPU than Keras's own (JAX: by chunks of
  the batch), which train steps use (`keras_mtl.models.calls.fast_layers`).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import keras
import numpy as np


def module() -> ModuleType:
    """The module of the backend Keras runs on."""
    return importlib.import_module(f"keras_mtl.backend.{keras.backend.backend()}")


def host_call(
    fn: Callable[..., Sequence[Any]], inputs: Sequence[Any], shapes: Sequence[tuple]
) -> list[Any]:
    """Calls `fn` on NumPy copies of `inputs` from inside a compiled step.

    Args:
        fn: Takes NumPy arrays, returns float32 arrays of the given shapes.
        inputs: Backend tensors.
        shapes: The shapes of `fn`'s outputs.

    Returns:
        The outputs as backend tensors.
    """
    return module().host_call(fn, inputs, shapes)


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any,
    y_like: Any = None,
    reverse: bool = False,
) -> tuple[Any, Any]:
    """`jax.lax.scan` semantics on every backend: returns (final carry,
    stacked per-step outputs in the order of `xs`).

    Args:
        f: (carry, x) -> (carry, y).
        init: The initial carry (a tensor or tuple of tensors).
        xs: A tensor scanned along its first axis.
        y_like: A tensor shaped like one step's `y` (None when f returns
            no y). (`keras.ops.scan` on TensorFlow requires y to be shaped
            like the carry.)
        reverse: Scan from the last step to the first.
    """
    return module().scan(f, init, xs, y_like, reverse)


def segment_sum(data: Any, segment_ids: Any, num_segments: int) -> Any:
    """Sums the rows of `data` by segment id (a scatter-add); faster than
    `keras.ops.segment_sum` on PyTorch."""
    return module().segment_sum(data, segment_ids, num_segments)


def task_gradients(
    losses_of: Callable[[list[Any]], Any], values: list[Any]
) -> list[Any]:
    """The Jacobian of a (tasks,) loss vector `losses_of(values)` with respect
    to `values`, computed eagerly: one NumPy (tasks, *shape) array per value
    (for analysis, outside the compiled step)."""
    primals = [keras.ops.convert_to_tensor(v) for v in values]
    losses, _, pullback = module().vjp(lambda p: (losses_of(p), None), primals)
    rows = pullback.batched(keras.ops.eye(int(losses.shape[0]), dtype=losses.dtype))
    return [keras.ops.convert_to_numpy(r) for r in rows]


def global_task_losses(
    losses: list[Any], counts: list[Any], training: bool = True
) -> tuple[list[Any], list[Any], float]:
    """The tasks' masked mean losses and labelled counts over the global
    batch, and the factor the step's loss takes. Where each replica runs
    the step on its share of the batch (`tf.distribute` on TensorFlow, a
    `torch.distributed` process group on PyTorch), the labelled sums and
    counts are all-reduced, and the factor is 1/replicas where the
    optimizer sums the replicas' gradients (TensorFlow; on PyTorch the
    optimizer averages them; outside training, each process keeps its own,
    so that one process may evaluate alone). JAX's `keras.distribution`
    computes on global arrays already: `(losses, counts, 1.0)`."""
    fn = getattr(module(), "global_task_losses", None)
    return (losses, counts, 1.0) if fn is None else fn(losses, counts, training)


_REDUCED = [False]


@contextlib.contextmanager
def reduced() -> Iterator[None]:
    """Within it, `guarded_apply` takes the gradients as already reduced
    across processes (a balanced step all-reduces its own), so the
    optimizer's reduction (`reduce_gradients`) is skipped."""
    _REDUCED[0] = True
    try:
        yield
    finally:
        _REDUCED[0] = False


def guarded_apply(
    apply: Callable[[Any, Any], Any],
    grads: Sequence[Any],
    variables: Any,
    all_finite: Callable[[Any], Any],
    report: Callable[[Any], None] | None,
) -> Any:
    """Applies `grads` with `apply` (an optimizer's stateful `apply`) only
    when `all_finite(grads)`, passing that flag to `report`; without a
    check (`report=None`), always. The gradients are first reduced
    across processes where the backend's optimizer does not do it itself
    (`reduce_gradients`); a backend whose replicas must step or skip
    together provides its own `guarded_apply`."""
    mod = module()
    special = getattr(mod, "guarded_apply", None)
    if special is not None:
        return special(apply, grads, variables, all_finite, report)
    reduce = getattr(mod, "reduce_gradients", None)
    if reduce is not None and not _REDUCED[0]:
        grads = reduce(grads)
    if report is None:
        return apply(grads, variables)
    ok = all_finite(grads)
    report(ok)
    return apply(grads, variables) if bool(ok) else None


def processes() -> tuple[int, int]:
    """(this process's index, the number of processes training together):
    a `torch.distributed` process group, or JAX's processes after
    `jax.distributed.initialize`; (0, 1) elsewhere (TensorFlow's replicas
    run in one process)."""
    fn = getattr(module(), "processes", None)
    return (0, 1) if fn is None else fn()


def fetch(value: Any) -> Any:
    """A variable's value as a NumPy array, in every process: JAX gathers
    the shards of a weight that a layout spreads over several processes
    (every process must call it then)."""
    value = getattr(value, "value", value)
    fn = getattr(module(), "fetch", None)
    return keras.ops.convert_to_numpy(value) if fn is None else fn(value)


def gather_processes(array: np.ndarray) -> np.ndarray:
    """Every process's `array` (same shape in each), concatenated along
    the first axis in process order, in every process; `array` itself with
    one process."""
    if processes()[1] == 1:
        return np.asarray(array)
    return module().gather_processes(np.asarray(array))


def local_part(value: Any) -> Any:
    """This process's rows of a step's output: under several JAX processes
    a batch's outputs span every process's devices, and each process reads
    back the rows it fed (its local batch); the value itself elsewhere."""
    fn = getattr(module(), "local_part", None)
    return value if fn is None else fn(value)


def barrier() -> None:
    """Waits until every process gets here (nothing with one process)."""
    if processes()[1] > 1:
        module().barrier()


def first_process_says(flag: bool) -> bool:
    """Process 0's `flag` in every process, so that all of them decide
    alike (the flag itself with one process)."""
    if processes()[1] == 1:
        return bool(flag)
    return module().first_process_says(flag)


def restorer(variables: Sequence[Any]) -> Callable[[], None] | None:
    """A function that gives `variables` back their present values (a
    metric's reset) faster than assigning each anew (JAX); None where the
    metrics' own reset is as fast (and under `tf.distribute`, whose metric
    variables only their own reset handles)."""
    fn = getattr(module(), "restorer", None)
    return None if fn is None else fn(variables)


def rng_state() -> Any:
    """The backend's global random state as a NumPy array (None where
    Keras draws every random number from its own seed generators)."""
    fn = getattr(module(), "rng_state", None)
    return None if fn is None else fn()


def set_rng_state(state: Any) -> None:
    """Restores what `rng_state` returned."""
    fn = getattr(module(), "set_rng_state", None)
    if fn is not None and state is not None:
        fn(state)


def feedable(data: Any) -> Any:
    """`data` as this backend's `fit` takes it. A `PyDataset` whose batches
    differ in shape (`variable_shapes = True`, e.g. length buckets) becomes
    a `tf.data.Dataset` with open shapes on TensorFlow, where Keras would
    fix the shapes from the first two batches."""
    fn = getattr(module(), "feedable", None)
    if fn is None or not getattr(data, "variable_shapes", False):
        return data
    return fn(data)
