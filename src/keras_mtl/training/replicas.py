"""Per-task rows under data parallelism (`tf.distribute`, `torch.distributed`).

Each replica runs the balanced step on its share of the global batch. A
task's global loss is its labelled sum over every replica divided by its
labelled count over every replica, so replica r's share of a task's row
is its own row scaled by (its count) / (the global count), and the global
row is the sum of the shares over the replicas. What each method needs is
reduced so that every replica sees what one device would see on the
global batch:

* parameter level: the rows of the shared variables, all-reduced (T x P
  numbers per step); every replica then computes the same Gramian or
  Jacobian method's update;
* representation level, Gramian methods: the T x T Gramian, all-reduced
  (the rows of different samples are orthogonal pieces of the global
  rows), then the weighted backward pass and its gradients all-reduced
  (P numbers);
* representation level, Jacobian methods: the per-sample rows gathered
  (T x B x F numbers), the method's update on all of them, each replica
  keeping its own samples' part for its backward pass;
* the heads' gradients, the losses and the labelled counts, all-reduced.

Every replica ends with the global batch's gradients: on PyTorch the
optimizer's reduction is skipped; on TensorFlow the strategy sums the
replicas' gradients, so each gives 1/replicas of them (`applied`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from keras import ops

from keras_mtl.training.rows import Rows

Tensor = Any


class Replicas:
    """The collectives of one step on `n` replicas (`n` > 1).

    Args:
        prims: The backend's primitives (`all_sum`, `all_gather`,
            `replica_index`, `OPTIMIZER_REDUCTION`).
        n: The number of replicas.
    """

    def __init__(self, prims: ModuleType, n: int) -> None:
        self.prims = prims
        self.n = n
        #: Whether collectives may run inside the backend's conditional.
        self.branching = bool(getattr(prims, "COLLECTIVES_IN_COND", True))

    def sum(self, tensors: list[Tensor]) -> list[Tensor]:
        """Each tensor summed over the replicas (one collective)."""
        return self.prims.all_sum(list(tensors))

    def mean(self, tensors: list[Tensor]) -> list[Tensor]:
        return [t / self.n for t in self.sum(tensors)]

    def losses(
        self, losses: list[Tensor], counts: list[Tensor]
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """(shares, global losses, global counts) from this replica's masked
        mean losses and labelled counts: `shares[t]`, this replica's part
        of task t's global loss per unit of its own mean loss."""
        mine = ops.stack([ops.cast(c, "float32") for c in counts])
        own = ops.stack([ops.cast(v, "float32") for v in losses])
        total, sums = self.sum([mine, own * mine])
        scale = 1.0 / ops.maximum(total, 1.0)
        return mine * scale, list(ops.unstack(sums * scale)), list(ops.unstack(total))

    def gather(self, pieces: list[Tensor]) -> list[Tensor]:
        """Per-sample pieces (tasks, batch, ...) of every replica, joined
        along the batch axis in replica order."""
        out = []
        for p in pieces:
            whole = self.prims.all_gather(p, 1)
            # The gather may forget the dimensions it does not join.
            out.append(ops.reshape(whole, (p.shape[0], -1, *p.shape[2:])))
        return out

    def own(self, pieces: list[Tensor], like: list[Tensor]) -> list[Tensor]:
        """This replica's samples of gathered pieces of shape (batch, ...)
        (`like`: its own pieces, of shape (tasks, batch, ...))."""
        size = ops.shape(like[0])[1]
        sizes = self.prims.all_gather(ops.reshape(ops.cast(size, "int32"), (1,)), 0)
        index = self.prims.replica_index()
        before = ops.sum(ops.where(ops.arange(self.n) < index, sizes, 0))
        picks = ops.arange(size) + ops.cast(before, "int32")
        return [ops.take(p, picks, axis=0) for p in pieces]

    @property
    def skips_optimizer_reduction(self) -> bool:
        """Whether the optimizer's own reduction is skipped (PyTorch, whose
        reduction keras-mtl makes: identical gradients need none)."""
        return self.prims.OPTIMIZER_REDUCTION == "mean"

    def applied(self, grads: list[Tensor]) -> list[Tensor]:
        """What each replica gives its optimizer: the global gradients
        where its reduction is skipped; 1/replicas of them where the
        strategy sums the replicas' (TensorFlow)."""
        if self.skips_optimizer_reduction:
            return list(grads)
        return [g / self.n for g in grads]


class ReplicatedRows(Rows):
    """A task-row provider whose rows, backward passes and layer losses'
    gradients are the global batch's: the provider's own, computed from
    this replica's share of each task's rows (scaled cotangents), summed
    over the replicas; the layer losses' gradients averaged (each replica
    holds the same weights' penalties)."""

    def __init__(self, inner: Any, replicas: Replicas) -> None:
        self.inner = inner
        self.replicas = replicas
        self.z = inner.z
        self.non_trainable = inner.non_trainable

    def jacobian(self, jz: list[Tensor]) -> list[Tensor]:
        return self.replicas.sum(self.inner.jacobian(jz))

    def through(self, dz: list[Tensor]) -> list[Tensor]:
        # Each replica adds 1/n of the layer losses' gradient.
        return self.replicas.sum(self.inner.through(dz, reg=1.0 / self.replicas.n))

    def reg(self) -> list[Tensor] | None:
        own = self.inner.reg()
        return None if own is None else self.replicas.mean(own)
