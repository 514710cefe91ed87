"""JAX primitives: `jax.vjp`, batched backward passes by `vmap`, host calls,
max pooling whose backward pass needs no select-and-scatter, attention by
chunks of the batch."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import keras
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

    def batched(self, cotangents: Any, reduce: Callable | None = None) -> Any:
        """One backward pass per row of `cotangents` (stacked on a leading
        axis), results (each through `reduce` where given, inside its own
        pass) stacked the same way. On accelerators the passes run
        as one vectorised pass (`vmap`); on CPU one after the other, which
        XLA compiles to the ordinary backward kernels: `vmap` turns a
        convolution's weight gradient into a grouped convolution and a
        pooling's backward pass into a batched scatter, both several times
        slower per row on CPU than the unbatched ones (measured in
        docs/benchmarks.md: a Conv2D trunk's 10-task step 9.7x EW's
        batched, 3.1x unrolled)."""
        one = self if reduce is None else (lambda c: reduce(self(c)))
        if jax.default_backend() != "cpu":
            return jax.vmap(one)(cotangents)
        rows = int(jax.tree.leaves(cotangents)[0].shape[0])
        outs: list[Any] = []
        for i in range(rows):
            cotangent = jax.tree.map(lambda c, i=i: c[i], cotangents)
            outs.append(one(_after(cotangent, outs[-1]) if outs else cotangent))
        return jax.tree.map(lambda *parts: jnp.stack(parts), *outs)


def _after(value: Any, done: Any) -> Any:
    """`value` plus an exact zero computed from every array of `done`: a
    pass fed with it runs after `done` is complete. XLA on the CPU
    otherwise schedules the unrolled per-task passes side by side, each
    task's cotangents of every layer alive at once (a Conv2D trunk's
    10-task step held 44 MiB against equal weighting's 14 MiB); one after
    the other each pass's buffers are freed before the next begins (14 MiB:
    docs/benchmarks.md). XLA removes optimization barriers before it
    schedules, so the order needs a data dependency. Non-finite values in
    `done` still give zero, so one task's NaN never reaches another's row."""
    total = sum(
        jnp.sum(leaf, dtype=jnp.float32)
        for leaf in jax.tree.leaves(done)
        if jnp.issubdtype(leaf.dtype, jnp.floating)
    )
    # -|t| * 0 is -0.0, which leaves every value as it is, +0.0 and -0.0
    # included (+0.0 would turn -0.0 into +0.0).
    zero = -jnp.abs(jnp.where(jnp.isfinite(total), total, 0.0)) * 0.0
    return jax.tree.map(
        lambda v: (
            v + zero.astype(v.dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v
        ),
        value,
    )


def vjp(fn: Callable[[Any], tuple[Any, Any]], primals: Any) -> tuple[Any, Any, Any]:
    out, vjp_fn, aux = jax.vjp(fn, primals, has_aux=True)
    return out, aux, Pullback(vjp_fn)


def gradients(
    fns: Sequence[Callable[[Any], Any]], primals: Sequence[Any]
) -> list[Any] | None:
    """The gradient of each scalar function `fns[i]` to its own primals
    `primals[i]`; None where one batched pullback serves better
    (accelerators). On the CPU each is its own VJP, whose backward pass runs
    through only what that function depends on: one task's loss, its own
    head, where pulling back the stacked losses with each one-hot cotangent
    runs through every head for every task (tasks^2 head passes; measured
    in docs/benchmarks.md). The forward passes, traced once per function,
    are one computation to XLA (common subexpressions)."""
    if accelerator():
        return None
    out = []
    for fn, own in zip(fns, primals, strict=True):
        value, pull = jax.vjp(fn, own)
        out.append(pull(jnp.ones_like(value))[0])
    return out


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


def max_pool(
    inputs: Any, pool_size: tuple[int, ...], padding: str, data_format: str
) -> Any:
    """Keras's max pooling for windows that do not overlap (strides equal
    to `pool_size`), with a backward pass that sends each window's gradient
    to its first maximum through a mask instead of XLA's select-and-scatter
    (the same gradient, ties included; on the CPU a Conv2D trunk's
    backward pass ran 5x faster: docs/benchmarks.md). The forward pass is
    Keras's own."""
    return _max_pool(inputs, tuple(pool_size), padding, data_format)


def _keras_max_pool(
    x: Any, pool_size: tuple[int, ...], padding: str, data_format: str
) -> Any:
    return keras.ops.max_pool(x, pool_size, pool_size, padding, data_format)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x: Any, pool_size: tuple, padding: str, data_format: str) -> Any:
    return _keras_max_pool(x, pool_size, padding, data_format)


def _max_pool_forward(
    x: Any, pool_size: tuple, padding: str, data_format: str
) -> tuple[Any, Any]:
    y = _keras_max_pool(x, pool_size, padding, data_format)
    return y, (x, y)


def _max_pool_backward(
    pool_size: tuple, padding: str, data_format: str, saved: Any, g: Any
) -> tuple[Any]:
    x, y = saved
    first = data_format == "channels_first"
    if first:  # work channels last
        x, y, g = (jnp.moveaxis(a, 1, -1) for a in (x, y, g))
    spatial = x.shape[1:-1]
    # Pad (padding "same": as XLA's SAME, the extra row after) or crop
    # (padding "valid": the rows no window covers get no gradient) each
    # spatial axis to a whole number of windows.
    edges = []
    for n, p in zip(spatial, pool_size, strict=True):
        out = -(-n // p) if padding == "same" else n // p
        extra = out * p - n
        edges.append((extra // 2, extra - extra // 2) if extra > 0 else (0, extra))
    grown = [(0, 0)] + [(lo, max(hi, 0)) for lo, hi in edges] + [(0, 0)]
    xp = jnp.pad(x, grown, constant_values=-jnp.inf)
    outs = y.shape[1:-1]
    crop = tuple(slice(0, o * p) for o, p in zip(outs, pool_size, strict=True))
    xp = xp[(slice(None), *crop, slice(None))]
    d = len(spatial)
    split = (
        x.shape[0],
        *[s for o, p in zip(outs, pool_size, strict=True) for s in (o, p)],
        x.shape[-1],
    )
    # (batch, out_1, p_1, ..., out_d, p_d, channels) -> windows last.
    order = (0, *range(1, 2 * d, 2), 2 * d + 1, *range(2, 2 * d + 1, 2))
    windows = jnp.transpose(xp.reshape(split), order).reshape((*y.shape, -1))
    hit = windows == y[..., None]
    chosen = jnp.logical_and(hit, jnp.cumsum(hit, axis=-1) == 1)
    gw = jnp.where(chosen, g[..., None], jnp.zeros((), g.dtype))
    shaped = gw.reshape((*y.shape, *pool_size))
    gx = jnp.transpose(shaped, tuple(np.argsort(order))).reshape(xp.shape)
    # Undo the padding and the crop.
    gx = gx[
        (
            slice(None),
            *[slice(lo, lo + n) for n, (lo, _) in zip(spatial, edges, strict=True)],
        )
    ]
    gx = jnp.pad(gx, [(0, 0)] + [(0, -min(hi, 0)) for _, hi in edges] + [(0, 0)])
    if first:
        gx = jnp.moveaxis(gx, -1, 1)
    return (gx,)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)


#: Scores a chunk of the batch holds at most (bytes): a chunk's forward and
#: backward passes then run over scores that stay in the CPU's caches.
ATTENTION_CHUNK_BYTES = 1 << 22


def dot_product_attention(query: Any, key: Any, value: Any, scale: float) -> Any:
    """Unmasked softmax attention, `(batch, targets, heads, dim)` query and
    `(batch, sources, heads, dim)` key and value, as Keras's
    `ops.dot_product_attention` computes it, for the CPU: the batch runs
    in chunks whose scores fit in the caches, and the backward pass takes
    the softmax's row sums from the output and its cotangent (the
    FlashAttention identity rowsum(P * dP) = rowsum(O * dO), Dao et al.
    2022, https://arxiv.org/abs/2205.14135) instead of a pass over the
    scores. On the 2-core CPU the TweetEval Transformer's equal-weighting
    step took 55 ms with it against 84 ms with Keras's (docs/benchmarks.md)."""
    batch, targets, heads = query.shape[0], query.shape[1], query.shape[2]
    per_sample = heads * targets * key.shape[1] * 4
    size = max(1, min(batch, ATTENTION_CHUNK_BYTES // max(per_sample, 1)))
    return _attention(query, key, value, float(scale), size)


def _heads_first(x: Any) -> Any:
    return jnp.transpose(x, (0, 2, 1, 3))


def _chunks(batch: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, batch)) for i in range(0, batch, size)]


def _joined_chunks(parts: list[Any]) -> Any:
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0)


def _attention_forward(
    query: Any, key: Any, value: Any, scale: float, size: int
) -> tuple[Any, Any]:
    s = jnp.asarray(scale, query.dtype)
    outs, saved = [], []
    for part in _chunks(query.shape[0], size):
        q, k, v = (_heads_first(a[part]) for a in (query, key, value))
        scores = jnp.einsum("bhtd,bhsd->bhts", q * s, k)
        e = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))
        p = e / jnp.sum(e, axis=-1, keepdims=True)
        out = jnp.einsum("bhts,bhsd->bhtd", p, v)
        outs.append(_heads_first(out))
        saved.append((q, k, v, p, out))
    return _joined_chunks(outs), saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attention(query: Any, key: Any, value: Any, scale: float, size: int) -> Any:
    return _attention_forward(query, key, value, scale, size)[0]


def _attention_backward(
    scale: float, size: int, saved: Any, g: Any
) -> tuple[Any, Any, Any]:
    del size
    grads: tuple[list, list, list] = ([], [], [])
    s = jnp.asarray(scale, g.dtype)
    start = 0
    for q, k, v, p, out in saved:
        gh = _heads_first(g[start : start + q.shape[0]])
        start += q.shape[0]
        dv = jnp.einsum("bhts,bhtd->bhsd", p, gh)
        dp = jnp.einsum("bhtd,bhsd->bhts", gh, v)
        ds = p * (dp - jnp.sum(gh * out, axis=-1, keepdims=True))
        dq = jnp.einsum("bhts,bhsd->bhtd", ds, k) * s
        dk = jnp.einsum("bhts,bhtd->bhsd", ds, q) * s
        for acc, d in zip(grads, (dq, dk, dv), strict=True):
            acc.append(_heads_first(d))
    dq, dk, dv = (_joined_chunks(parts) for parts in grads)
    return dq, dk, dv


_attention.defvjp(_attention_forward, _attention_backward)
