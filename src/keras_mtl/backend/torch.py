"""PyTorch primitives: VJPs by `torch.autograd.grad` (batched over task
cotangents), host calls, the process group's reductions."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import torch


def host_call(
    fn: Callable[..., Sequence[Any]], inputs: Sequence[Any], shapes: Sequence[tuple]
) -> list[Any]:
    arrays = [
        t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
        for t in inputs
    ]
    device = next((t.device for t in inputs if torch.is_tensor(t)), "cpu")
    return [
        torch.as_tensor(np.asarray(o, np.float32).reshape(s), device=device)
        for o, s in zip(fn(*arrays), shapes, strict=True)
    ]


def segment_sum(data: Any, segment_ids: Any, num_segments: int) -> Any:
    out = torch.zeros(
        (num_segments, *data.shape[1:]), dtype=data.dtype, device=data.device
    )
    return out.index_add_(0, segment_ids.long(), data)


def scan(f: Any, init: Any, xs: Any, y_like: Any, reverse: bool) -> tuple[Any, Any]:
    carry, ys = init, []
    steps = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
    for t in steps:
        carry, y = f(carry, xs[t])
        ys.append(y)
    if y_like is None:
        return carry, None
    if reverse:
        ys.reverse()
    return carry, torch.stack(ys)


def _filled(grads: Sequence[Any], shapes: Sequence[tuple], device: Any) -> list[Any]:
    return [
        torch.zeros(s, device=device) if g is None else g
        for g, s in zip(grads, shapes, strict=True)
    ]


#: Variables keep their values between steps: gradients are applied to them.
STATELESS = False


class Pullback:
    """Backward passes through one recorded forward call (the graph is
    retained, so it can be pulled back through any number of times)."""

    def __init__(self, out: Any, leaves: list[Any], structure: Any) -> None:
        self.out = keras.tree.flatten(out)
        self.leaves = leaves
        self.structure = structure
        self.device = leaves[0].device if leaves else "cpu"

    def _grad(self, cotangent: Any, batch: tuple) -> Any:
        pairs = [
            (o, c)
            for o, c in zip(self.out, keras.tree.flatten(cotangent), strict=True)
            if torch.is_tensor(o) and o.requires_grad
        ]
        wanted = [i for i, leaf in enumerate(self.leaves) if leaf.requires_grad]
        grads: list[Any] = [None] * len(self.leaves)
        if pairs and wanted:
            found = torch.autograd.grad(
                [o for o, _ in pairs],
                [self.leaves[i] for i in wanted],
                grad_outputs=[c for _, c in pairs],
                retain_graph=True,
                allow_unused=True,
                is_grads_batched=bool(batch),
            )
            for i, g in zip(wanted, found, strict=True):
                grads[i] = g
        filled = _filled(
            grads, [(*batch, *leaf.shape) for leaf in self.leaves], self.device
        )
        return keras.tree.pack_sequence_as(self.structure, filled)

    def __call__(self, cotangent: Any) -> Any:
        return self._grad(cotangent, ())

    def batched(self, cotangents: Any, reduce: Callable | None = None) -> Any:
        rows = int(keras.tree.flatten(cotangents)[0].shape[0])
        out = self._grad(cotangents, (rows,))
        if reduce is None:
            return out
        parts = [
            reduce(keras.tree.map_structure(lambda t, i=i: t[i], out))
            for i in range(rows)
        ]
        return keras.tree.map_structure(lambda *p: torch.stack(p), *parts)


def vjp(fn: Callable[[Any], tuple[Any, Any]], primals: Any) -> tuple[Any, Any, Any]:
    leaves = [
        t.detach().requires_grad_(True)
        if torch.is_tensor(t) and t.is_floating_point()
        else torch.as_tensor(t)
        for t in keras.tree.flatten(primals)
    ]
    out, aux = fn(keras.tree.pack_sequence_as(primals, leaves))
    return out, aux, Pullback(out, leaves, primals)


def accelerator() -> bool:
    """Whether steps run on an accelerator (Keras puts them on CUDA when
    there is one)."""
    return bool(torch.cuda.is_available())


def cond(pred: Any, when_true: Callable, when_false: Callable) -> Any:
    return when_true() if bool(pred) else when_false()


def no_grad() -> Any:
    return torch.no_grad()


def replicas() -> int:
    """Processes training together (`torch.distributed`'s world size once a
    process group is initialized), else 1."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return int(distributed.get_world_size())
    return 1


#: How the optimizer combines the processes' gradients (`reduce_gradients`).
OPTIMIZER_REDUCTION = "mean"


def replica_index() -> int:
    """This process's rank (0 without a process group)."""
    return int(torch.distributed.get_rank()) if replicas() > 1 else 0


def all_sum(tensors: list[Any]) -> list[Any]:
    """Each tensor summed over the processes, in one collective over one
    float32 buffer."""
    if replicas() == 1 or not tensors:
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1).to(torch.float32) for t in tensors])
    torch.distributed.all_reduce(flat)
    out, start = [], 0
    for t in tensors:
        out.append(flat[start : start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return out


def all_gather(tensor: Any, axis: int) -> Any:
    """Every process's `tensor` joined along `axis`, in rank order (the
    sizes along `axis` may differ)."""
    world = replicas()
    if world == 1:
        return tensor
    tensor = tensor.detach().contiguous()
    size = torch.tensor([tensor.shape[axis]], dtype=torch.int64)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    torch.distributed.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    pad = [0, 0] * (tensor.ndim - 1 - axis) + [0, longest - tensor.shape[axis]]
    padded = torch.nn.functional.pad(tensor, pad)
    parts = [torch.empty_like(padded) for _ in sizes]
    torch.distributed.all_gather(parts, padded)
    return torch.cat(
        [p.narrow(axis, 0, int(s)) for p, s in zip(parts, sizes, strict=True)],
        dim=axis,
    )


def global_task_losses(
    losses: list[Any], counts: list[Any], training: bool
) -> tuple[list[Any], list[Any], float]:
    """In training, each task's masked mean over every process's batch: the
    labelled sums and counts all-reduced (the sums through the
    differentiable all-reduce, whose gradient is all-reduced back). Outside
    training, the process's own: `evaluate` in one process alone must not
    wait for the others."""
    world = replicas()
    if world == 1 or not training:
        return losses, counts, 1.0
    from torch.distributed.nn.functional import all_reduce

    total = torch.stack([torch.as_tensor(c) for c in counts]).detach().clone()
    torch.distributed.all_reduce(total)
    with warnings.catch_warnings():  # its private successor has no gradient
        warnings.simplefilter("ignore", FutureWarning)
        sums = all_reduce(
            torch.stack(
                [loss * count for loss, count in zip(losses, counts, strict=True)]
            )
        )
    means = sums / torch.clamp(total, min=1.0)
    return list(means.unbind()), list(total.unbind()), 1.0


def reduce_gradients(grads: Any) -> list[Any]:
    """The mean of every process's gradients (DistributedDataParallel's
    reduction), in one collective: every process applies the same update.
    Each process's loss holds the global task losses, whose all-reduce
    sends every process's gradient back to all of them, so the mean is the
    global batch's gradient."""
    world = replicas()
    if world == 1:
        return list(grads)
    summed = iter(all_sum([g for g in grads if g is not None]))
    return [None if g is None else next(summed) / world for g in grads]


def rng_state() -> np.ndarray:
    # Keras's unseeded Dropout on PyTorch draws from torch's global generator.
    return torch.get_rng_state().numpy().copy()


def set_rng_state(state: np.ndarray) -> None:
    torch.set_rng_state(torch.from_numpy(np.asarray(state, np.uint8)))


def processes() -> tuple[int, int]:
    """(this process's rank, the process group's size), (0, 1) without one."""
    return replica_index(), replicas()


def barrier() -> None:
    """Waits until every process gets here."""
    torch.distributed.barrier()


def first_process_says(flag: bool) -> bool:
    """Rank 0's `flag`, in every process."""
    value = torch.tensor([int(flag)], dtype=torch.int32)
    torch.distributed.broadcast(value, 0)
    return bool(value.item())
