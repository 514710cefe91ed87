"""A balancing method at work inside a model: its state, its step, its metrics.

`Balancing` is what `MultiTaskModel.compile(balancer=...)` builds. It holds
the method, its state in Keras variables (`keras_mtl.layers.BalancerState`,
a layer of the model, so it is saved and restored with the weights), the
split of the model
at the shared representation, and the host function that runs the NumPy
method inside a compiled step (through the backend module's `host_call`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl import backend as mtl_backend
from keras_mtl import balancers as balancers_module
from keras_mtl.balancers.base import (
    Balancer,
    GramianWeighting,
    Inputs,
    JacobianAggregator,
    LossWeighting,
    context,
)
from keras_mtl.layers.balancer_state import BalancerState
from keras_mtl.models.sharing import Split, split_model

Tensor = Any
MODES = ("parameter", "representation")


def _on_present(
    balancer: Balancer,
    inputs: Inputs,
    state: NamedTuple,
    ctx: Any,
    present: np.ndarray,
) -> np.ndarray:
    """A stateless method's output when only the `present` tasks have labels
    in the batch: it runs on them alone; the others weigh 0."""
    idx = np.flatnonzero(present)
    if balancer.level == "jacobian" and not len(idx):
        return np.zeros(inputs.jacobian.shape[1])
    out = np.zeros(len(inputs.losses))
    if not len(idx):
        return out
    sub = Inputs(
        inputs.losses[idx],
        None if inputs.gramian is None else inputs.gramian[np.ix_(idx, idx)],
        None if inputs.jacobian is None else inputs.jacobian[idx],
    )
    result = balancer.update(sub, state, ctx)[0]
    if balancer.level == "jacobian":
        return result
    out[idx] = result
    return out


def _restore(template: NamedTuple, arrays: list[np.ndarray]) -> NamedTuple:
    return type(template)(
        *[
            np.asarray(a, np.float64).reshape(np.shape(t))
            for a, t in zip(arrays, template, strict=True)
        ]
    )


def _as_float32(values: Any) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float32) for v in values]


class Balancing:
    """A balancing method attached to a compiled `MultiTaskModel`.

    Args:
        model: The model.
        balancer: The method.
        mode: `"parameter"` (per-task gradients of the shared parameters) or
            `"representation"` (per-task gradients of the shared
            representation: one backward pass through the encoder).
        cosine: Also report the cosine similarity of every pair of task
            gradients (`cosine/<a>/<b>`).
        update_every: Recompute a Gramian method's weights every this many
            steps and reuse them in between (Navon et al. 2022); the steps in
            between cost one weighted backward pass.
    """

    def __init__(
        self,
        model: Any,
        balancer: Balancer,
        mode: str = "parameter",
        cosine: bool = False,
        update_every: int = 1,
    ) -> None:
        self.balancer = balancer
        self.mode = mode
        self.cosine = bool(cosine)
        self.update_every = int(update_every)
        # Where the backend compiles a step for each phase of `update_every`
        # (`keras_mtl.training.step.phased_train_function`), the phase the
        # step being traced runs: "recompute" or "reuse"; None: one step
        # with a conditional.
        self.phase: str | None = None
        self.phased = True
        self.task_names = model.task_names
        self.num_tasks = len(model.tasks)
        key = balancer.key
        if mode not in MODES:
            raise ValueError(
                f"balance_mode must be 'parameter' or 'representation', got {mode!r}."
            )
        if self.update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}.")
        self.split: Split | None = None
        dim = 0
        if balancer.level == "loss":
            if mode != "parameter" or self.update_every != 1 or self.cosine:
                what = (
                    "balance_mode='representation'"
                    if mode != "parameter"
                    else "update_every"
                    if self.update_every != 1
                    else "cosine=True"
                )
                raise ValueError(
                    f"Balancer '{key}' weighs losses and computes no task gradients: "
                    f"{what} does not apply to it."
                )
        else:
            self.split = split_model(model)
            if self.split is None:
                raise ValueError(
                    f"Balancer '{key}' balances the gradients of variables shared by "
                    "two or more tasks, but no variable of this model is shared."
                )
            if mode == "representation" and balancer.not_at_representation:
                raise ValueError(
                    f"Balancer '{key}' is not defined at the representation level: "
                    f"{balancer.not_at_representation}"
                )
            if self.update_every != 1 and balancer.level != "gramian":
                raise ValueError(
                    f"update_every applies to methods that weigh tasks from the "
                    f"Gramian; '{key}' returns an update vector."
                )
            if balancer.level == "jacobian":
                dim = int(sum(int(np.prod(v.shape)) for v in self.split.shared))
            self._check_variables(model)
        self.state = BalancerState(balancer, self.num_tasks, dim)

    def _check_variables(self, model: Any) -> None:
        covered = {id(v) for v in self.split.shared}
        for own in self.split.task_variables.values():
            covered |= {id(v) for v in own}
        for var in model.trainable_variables:
            if id(var) not in covered and not var.path.startswith("balancer_state"):
                raise ValueError(
                    f"Trainable variable {var.path} is used by no task output; "
                    "gradient balancing needs every trainable variable on a path "
                    "to a task."
                )

    # ------------------------------------------------------------- metrics

    def metric_names(self) -> list[str]:
        names = [f"weight/{t}" for t in self.task_names]
        if self.cosine:
            names += [
                f"cosine/{a}/{b}"
                for i, a in enumerate(self.task_names)
                for b in self.task_names[i + 1 :]
            ]
        return names

    def metric_values(self, weights: Tensor, gramian: Tensor | None) -> Tensor:
        """The values of `metric_names` as one vector: the weights, then
        the gradient cosines of each pair of tasks where asked for."""
        weights = ops.cast(ops.reshape(weights, (-1,)), "float32")
        if not self.cosine:
            return weights
        diag = ops.sqrt(ops.maximum(ops.diagonal(gramian), 0.0))
        scale = ops.maximum(ops.outer(diag, diag), 1e-12)
        cos = ops.reshape(gramian / scale, (-1,))
        t = self.num_tasks
        pairs = [i * t + j for i in range(t) for j in range(i + 1, t)]
        return ops.concatenate([weights, ops.take(cos, pairs)])

    # ------------------------------------------------------ host functions

    def host(self) -> Any:
        """The method's step as a NumPy function for `host_call`.

        It takes (the Gramian, the Jacobian, or the losses again for a loss
        weighting), the losses, the labelled counts, the step and epoch
        counters and the stored state; it restores the state, restricts
        stateless methods to the tasks with labels in the batch, and returns
        float32 arrays: the output (below) and the new state. The output is
        the weights (loss level); the weights and the head factors (Gramian
        level); the update, the weights it implies and the head factors
        (Jacobian level)."""
        balancer = self.balancer
        template = self.state.template
        stateless = len(template) == 0

        def run(
            first: np.ndarray,
            losses: np.ndarray,
            counts: np.ndarray,
            step: np.ndarray,
            epoch: np.ndarray,
            *state: np.ndarray,
        ) -> list:
            present = np.asarray(counts) > 0
            ctx = context(balancer.seed, int(step), int(epoch), present)
            losses = np.asarray(losses, np.float64)
            first = np.asarray(first, np.float64)
            if not (np.isfinite(first).all() and np.isfinite(losses).all()):
                # A step the guard will skip: no solver runs on NaN, the
                # state stays as it was.
                return _as_float32([np.full(self.output_size(first), np.nan), *state])
            inputs = Inputs(
                losses,
                first if balancer.level == "gramian" else None,
                first if balancer.level == "jacobian" else None,
            )
            restored = _restore(template, list(state))
            if stateless and not present.all():
                out = _on_present(balancer, inputs, restored, ctx, present)
                new_state = restored
            else:
                out, new_state = balancer.update(inputs, restored, ctx)
            return _as_float32([self._with_heads(inputs, out), *new_state])

        return run

    def output_size(self, first: Any) -> int | None:
        """The length of the host function's output (see `host`)."""
        k = self.num_tasks
        if self.balancer.level == "loss":
            return k
        if self.balancer.level == "gramian":
            return 2 * k
        # Unknown where the columns are samples gathered from replicas.
        return None if first.shape[1] is None else int(first.shape[1]) + 2 * k

    def _with_heads(self, inputs: Inputs, out: np.ndarray) -> np.ndarray:
        level = self.balancer.level
        if level == "loss":
            return out
        if level == "gramian":
            return np.concatenate([out, self.balancer.head_factors(inputs.losses, out)])
        # The weights w with J^T w closest to the update: what the method
        # gives each task, for the `weight/<task>` metrics.
        weights = np.linalg.lstsq(inputs.jacobian.T, out, rcond=None)[0]
        heads = self.balancer.head_factors(inputs.losses, weights)
        return np.concatenate([out, weights, heads])

    def call_host(
        self, first: Tensor, losses: Tensor, counts: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """Runs the method's step (`host`) on this step's inputs and the
        stored state; returns its output and the new state values (not yet
        assigned)."""
        state = self.state
        inputs = [
            ops.stop_gradient(first),
            ops.stop_gradient(losses),
            ops.stop_gradient(counts),
            state.step.value,
            state.epoch.value,
            *state.values(),
        ]
        shapes = [(self.output_size(first),)]
        shapes += [tuple(v.shape) for v in state.state_variables]
        outs = mtl_backend.host_call(self.host(), inputs, shapes)
        return outs[0], outs[1:]

    def gramian_weights(
        self, gramian: Tensor, losses: Tensor, counts: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """A Gramian method's output (weights, then head factors) and new
        state: on the device in keras.ops where the method has a closed form
        (`GramianWeighting.device`), else on the host (`call_host`), the one
        call a step makes to it."""
        method = self.balancer
        k = self.num_tasks
        on_device = getattr(method, "device", False) and method.runs_on_device(
            k, mtl_backend.module().accelerator()
        )
        if not on_device:
            return self.call_host(gramian, losses, counts)
        gramian = ops.cast(ops.stop_gradient(gramian), "float32")
        losses = ops.stop_gradient(losses)
        present = ops.cast(counts > 0, "float32")
        finite = ops.logical_and(
            ops.all(ops.isfinite(gramian)), ops.all(ops.isfinite(losses))
        )
        # A step the guard will skip: no decomposition runs on NaN, the
        # output is NaN as the host's is.
        mask = ops.outer(present, present)
        safe = ops.where(finite, gramian * mask, ops.zeros_like(gramian))
        weights = method.on_device_at(safe, present, self.state.step.value)
        out = ops.concatenate([weights, ops.ones((k,), "float32")])
        return ops.where(finite, out, float("nan")), []

    # -------------------------------------------------------- loss level

    def loss_objective(self, losses: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """The objective a loss weighting minimises this step, and its weights.

        Updates the method's state and step counter.
        """
        balancer = self.balancer
        state = self.state
        if balancer.learned:
            objective, weights = balancer.objective(losses, counts, state.tensors())
        elif balancer.constant:
            weights = ops.convert_to_tensor(
                balancer.weights(np.ones(self.num_tasks), state.template), "float32"
            )
            objective = ops.sum(weights * losses)
        else:
            weights, new_state = self.call_host(losses, losses, counts)
            state.assign(new_state)
            objective = ops.sum(ops.stop_gradient(weights) * losses)
        state.step.assign(state.step.value + 1)
        return objective, weights


def build(
    model: Any, balancer: Any, mode: str, cosine: bool, update_every: int
) -> Balancing:
    """The `Balancing` for `compile(balancer=...)` arguments."""
    method = balancers_module.get(balancer)
    if not isinstance(method, LossWeighting | GramianWeighting | JacobianAggregator):
        raise ValueError(f"{method!r} is not a balancing method.")
    return Balancing(model, method, mode, cosine, update_every)


# ---------------------------------------------------------------------------
# The task losses a balanced step starts from (keras.ops only).


def finite_factor(losses: Tensor) -> Tensor:
    """1 when every loss is finite, else NaN (no gradient flows through)."""
    finite = ops.all(ops.isfinite(ops.stop_gradient(losses)))
    return ops.cast(ops.where(finite, 1.0, float("nan")), losses.dtype)


def poisoned(losses: Tensor) -> Tensor:
    """`losses` unchanged when all are finite; all NaN (and so every
    gradient NaN, which the guarded optimizer never applies) otherwise."""
    return losses * finite_factor(losses)


def weighted_losses(model: Any, losses: list[Tensor]) -> Tensor:
    """The task losses scaled by their compile-time weights, stacked."""
    return poisoned(
        ops.stack(
            [w * loss for w, loss in zip(model._task_loss_weights, losses, strict=True)]
        )
    )


def weighted_loss(model: Any, loss: Tensor, task: int, finite: Tensor) -> Tensor:
    """Entry `task` of `weighted_losses`, made from that task's loss alone:
    its gradient reaches only what that loss depends on. `finite` is
    `finite_factor` of every task's loss, taken once for all the tasks'
    passes."""
    return model._task_loss_weights[task] * loss * finite
