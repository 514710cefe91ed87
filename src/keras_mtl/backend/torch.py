"""PyTorch: per-task gradients by batched `torch.autograd.grad`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import torch

from keras_mtl import balancing as bal


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


def train_step(model: Any, data: Any) -> dict:
    balancing: bal.Balancing = model._balancing
    if replicas() > 1:
        raise ValueError(
            f"The balancer {balancing.balancer.key!r} works on per-task "
            f"gradients, which are not all-reduced across the {replicas()} "
            "processes of torch.distributed: train it in one process, or on "
            "the JAX backend with keras.distribution (docs/distribution.md)."
        )
    split = balancing.split
    k = balancing.num_tasks
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    enc, heads = split.encoder, split.heads
    enc_params = [v.value for v in enc.trainable_variables]
    head_params = [v.value for v in heads.trainable_variables]
    kernel = None
    if split.kernel is not None:
        # The encoder's own per-task gradient kernels: no autodiff there.
        with torch.no_grad():
            kernel = bal.KernelEncoder(model, split, x)
        z, enc_reg = list(kernel.z), None
    else:
        z = enc(x, training=True)
        z = list(z) if isinstance(z, list | tuple) else [z]
        enc_reg = sum(enc.losses) if enc.losses else None
    detached = [t.detach().requires_grad_(True) for t in z]
    preds = heads(bal.heads_inputs(model, split, x, detached), training=True)
    losses, counts = model.task_losses(y, preds, sample_weight, training=True)
    task_l = bal.weighted_losses(model, losses)
    head_reg = sum(heads.losses) if heads.losses else None
    device = task_l.device
    eye = torch.eye(k, device=device, dtype=task_l.dtype)
    grads = torch.autograd.grad(
        task_l,
        detached + head_params,
        grad_outputs=eye,
        is_grads_batched=True,
        retain_graph=True,
        allow_unused=True,
    )
    jz = _filled(grads[: len(z)], [(k, *t.shape) for t in z], device)
    jh = _filled(grads[len(z) :], [(k, *p.shape) for p in head_params], device)
    enc_shapes = [tuple(p.shape) for p in enc_params]

    def through_encoder(dz: list[Any]) -> list[Any]:
        if kernel is not None:
            with torch.no_grad():
                return kernel.through(dz)
        targets, cots = list(z), list(dz)
        if enc_reg is not None:
            targets.append(enc_reg)
            cots.append(torch.ones_like(enc_reg))
        out = torch.autograd.grad(
            targets, enc_params, grad_outputs=cots, retain_graph=True, allow_unused=True
        )
        return _filled(out, enc_shapes, device)

    def encoder_jacobian(pieces: list[Any]) -> list[Any]:
        if kernel is not None:
            with torch.no_grad():
                return kernel.jacobian(pieces)
        out = torch.autograd.grad(
            z,
            enc_params,
            grad_outputs=pieces,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        return _filled(out, [(k, *s) for s in enc_shapes], device)

    def encoder_reg() -> list[Any] | None:
        if enc_reg is None:
            return None
        out = torch.autograd.grad(
            enc_reg, enc_params, retain_graph=True, allow_unused=True
        )
        return _filled(out, enc_shapes, device)

    def cond(pred: Any, when_true: Callable, when_false: Callable) -> Any:
        return when_true() if bool(pred) else when_false()

    shared, step = bal.decide(
        balancing,
        jz,
        task_l.detach(),
        torch.stack(counts),
        through_encoder,
        encoder_jacobian,
        encoder_reg,
        cond,
    )
    head_grads = bal.combine(step.heads, jh)
    if head_reg is not None:
        reg = torch.autograd.grad(head_reg, head_params, allow_unused=True)
        head_grads = [
            g if r is None else g + r for g, r in zip(head_grads, reg, strict=True)
        ]
    by_id = {id(v): g for v, g in zip(enc.trainable_variables, shared, strict=True)}
    by_id.update(
        {id(v): g for v, g in zip(heads.trainable_variables, head_grads, strict=True)}
    )
    variables = model.trainable_variables
    grads = [
        by_id.get(id(v), torch.zeros(tuple(v.shape), device=device)) for v in variables
    ]
    with torch.no_grad():
        model.optimizer.apply([g.detach() for g in grads], variables)
        for var, value in bal.new_state_values(balancing, step):
            var.assign(value)
    batch = keras.tree.flatten(x)[0].shape[0]
    with torch.no_grad():
        bal.record(
            model,
            balancing,
            [loss.detach() for loss in losses],
            counts,
            step.weights,
            step.gramian,
            batch,
        )
        return model.compute_metrics(x, y, [p.detach() for p in preds], sample_weight)


def replicas() -> int:
    """Processes training together (`torch.distributed`'s world size once a
    process group is initialized), else 1."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return int(distributed.get_world_size())
    return 1


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


def _average_across_processes(grads: Any) -> list[Any]:
    """The mean of every process's gradients (DistributedDataParallel's
    reduction): every process applies the same update. Each process's
    loss holds the global task losses, whose all-reduce sends every
    process's gradient back to all of them, so the mean is the global
    batch's gradient."""
    world = replicas()
    out = []
    for g in grads:
        if g is not None:
            g = g.clone()
            torch.distributed.all_reduce(g)
            g = g / world
        out.append(g)
    return out


def guard_optimizer(optimizer: Any) -> None:
    original = type(optimizer).apply.__get__(optimizer)

    def apply(grads: Any, trainable_variables: Any = None) -> Any:
        if replicas() > 1:
            grads = _average_across_processes(grads)
        report = optimizer.__dict__.get("_mtl_report")
        if report is None:
            return original(grads, trainable_variables)
        from keras_mtl.backend import all_finite

        ok = all_finite(grads)
        report(ok)
        if bool(ok):
            return original(grads, trainable_variables)
        return None

    object.__setattr__(optimizer, "apply", apply)


def rng_state() -> np.ndarray:
    # Keras's unseeded Dropout on PyTorch draws from torch's global generator.
    return torch.get_rng_state().numpy().copy()


def set_rng_state(state: np.ndarray) -> None:
    torch.set_rng_state(torch.from_numpy(np.asarray(state, np.uint8)))


def task_gradients(
    losses_of: Callable[[list[Any]], Any], values: list[Any]
) -> list[np.ndarray]:
    """The Jacobian of the task losses `losses_of(values)` (a (tasks,)
    vector) with respect to `values`: one (tasks, *shape) array per value."""
    leaves = [torch.as_tensor(v).detach().clone().requires_grad_(True) for v in values]
    losses = losses_of(leaves)
    rows = []
    for i in range(losses.shape[0]):
        grads = torch.autograd.grad(
            losses[i], leaves, retain_graph=True, allow_unused=True
        )
        rows.append(_filled(grads, [v.shape for v in leaves], leaves[0].device))
    return [
        torch.stack([row[k] for row in rows]).detach().cpu().numpy()
        for k in range(len(leaves))
    ]
