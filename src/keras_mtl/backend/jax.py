"""JAX primitives: `jax.vjp`, batched backward passes by `vmap`, host calls."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


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


#: Keras's JAX trainer threads every variable's value through the step.
STATELESS = True

#: Shapes are known where a step is traced, and XLA drops computations whose
#: results nothing uses (layer rules in `keras_mtl.training.rows` rely on both).
STATIC_SHAPES = True


class Pullback:
    """The VJP of one forward call: any number of backward passes."""

    def __init__(self, vjp_fn: Callable[[Any], Any]) -> None:
        self.vjp_fn = vjp_fn

    def __call__(self, cotangent: Any) -> Any:
        return self.vjp_fn(cotangent)[0]

    def batched(self, cotangents: Any) -> Any:
        """One backward pass per row of `cotangents` (stacked on a leading
        axis), results stacked the same way. On accelerators the passes run
        as one vectorised pass (`vmap`); on CPU one after the other, which
        XLA compiles to the ordinary backward kernels: `vmap` turns a
        convolution's weight gradient into a grouped convolution and a
        pooling's backward pass into a batched scatter, both several times
        slower per row on CPU than the unbatched ones (measured in
        docs/benchmarks.md: a Conv2D trunk's 10-task step 9.7x EW's
        batched, 3.1x unrolled)."""
        if jax.default_backend() != "cpu":
            return jax.vmap(self)(cotangents)
        rows = int(jax.tree.leaves(cotangents)[0].shape[0])
        outs = [
            self(jax.tree.map(lambda c, i=i: c[i], cotangents)) for i in range(rows)
        ]
        return jax.tree.map(lambda *parts: jnp.stack(parts), *outs)


def vjp(fn: Callable[[Any], tuple[Any, Any]], primals: Any) -> tuple[Any, Any, Any]:
    out, vjp_fn, aux = jax.vjp(fn, primals, has_aux=True)
    return out, aux, Pullback(vjp_fn)


def jit_step(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A train step `fn(state, data)` compiled as Keras compiles its own
    (the state's buffers donated)."""
    return jax.jit(fn, donate_argnums=0)


def accelerator() -> bool:
    """Whether steps run on an accelerator (GPU or TPU)."""
    return jax.default_backend() != "cpu"


def cond(pred: Any, when_true: Callable, when_false: Callable) -> Any:
    return jax.lax.cond(pred, when_true, when_false)


def no_grad() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def processes() -> tuple[int, int]:
    """(this process's index, the number of processes): more than one after
    `jax.distributed.initialize` (`keras.distribution.initialize`)."""
    return int(jax.process_index()), int(jax.process_count())


def barrier() -> None:
    """Waits until every process gets here."""
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("keras_mtl")


def first_process_says(flag: bool) -> bool:
    """Process 0's `flag`, in every process."""
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


def gather_processes(array: np.ndarray) -> np.ndarray:
    """Every process's `array`, concatenated along axis 0 in process order."""
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def local_part(value: Any) -> Any:
    """The rows of a batch-sharded output that this process's devices hold,
    in order (a shard replicated on several devices counted once)."""
    if not isinstance(value, jax.Array) or value.is_fully_addressable:
        return value
    parts: dict[int, Any] = {}
    for shard in value.addressable_shards:
        start = shard.index[0].start if shard.index else None
        parts.setdefault(start or 0, shard.data)
    return np.concatenate([np.asarray(parts[k]) for k in sorted(parts)])


def restorer(variables: Sequence[Any]) -> Callable[[], None]:
    """Restores the variables' present values with one compiled call that
    makes fresh buffers (a train step donates the variables' buffers, so
    the saved arrays themselves cannot be handed back)."""
    values = [np.asarray(v.value) for v in variables]
    fresh = jax.jit(lambda: [jnp.asarray(v) for v in values])

    def restore() -> None:
        for variable, value in zip(variables, fresh(), strict=True):
            variable._direct_assign(value)

    return restore


def fetch(value: Any) -> np.ndarray:
    """A NumPy copy of `value` in every process, gathered where its shards
    lie in several processes (a collective: every process must call it)."""
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(value, tiled=True))
    return np.asarray(value)
