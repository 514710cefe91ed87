"""The state of a balancing method as Keras variables: a layer of the model,
so it is saved in `.keras` files and checkpoints with the weights."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from keras_mtl import balancers as balancers_module

Tensor = Any


@keras.saving.register_keras_serializable(package="keras_mtl")
class BalancerState(keras.layers.Layer):
    """The state of a balancing method as Keras variables.

    Holds one variable per field of the method's state (trainable for the
    fields the method learns with the model: UW's, IMTL-L's), the step and
    epoch counters, and the last step's weights and Gramian.

    Args:
        balancer: The method (object, name or config dict).
        num_tasks: Number of tasks.
        dim: Columns of the Jacobian, for methods that keep gradient vectors.
    """

    def __init__(
        self, balancer: Any, num_tasks: int, dim: int = 0, **kwargs: Any
    ) -> None:
        kwargs.setdefault("name", "balancer_state")
        super().__init__(**kwargs)
        self.balancer = balancers_module.get(balancer)
        self.num_tasks = int(num_tasks)
        self.dim = int(dim)
        template = self.balancer.init(self.num_tasks, self.dim)
        self.template = template
        # One variable per field of the state; the fields the method learns
        # with the model (UW, IMTL-L) are trainable, and left to the
        # optimizer: `assign` and the host steps never write them.
        self.state_variables = []
        learned = {}
        for field, value in zip(template._fields, template, strict=True):
            if field in self.balancer.learned:
                learned[field] = np.asarray(value, dtype=np.float32)
                continue
            value = np.asarray(value, dtype=np.float32)
            var = self.add_weight(
                shape=value.shape, initializer="zeros", trainable=False, name=field
            )
            var.assign(value)
            self.state_variables.append(var)
        self.step = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="step"
        )
        self.epoch = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="epoch"
        )
        # The last step's weights and Gramian: reused between recomputations
        # (update_every) and reported as metrics.
        self.last_weights = self.add_weight(
            shape=(self.num_tasks,), initializer="ones", trainable=False, name="weights"
        )
        self.last_heads = self.add_weight(
            shape=(self.num_tasks,), initializer="ones", trainable=False, name="heads"
        )
        self.last_gramian = self.add_weight(
            shape=(self.num_tasks, self.num_tasks),
            initializer="zeros",
            trainable=False,
            name="gramian",
        )
        self.learned_variables = {}
        for field, value in learned.items():
            var = self.add_weight(
                shape=value.shape, initializer="zeros", trainable=True, name=field
            )
            var.assign(value)
            self.learned_variables[field] = var
        self.built = True

    def values(self) -> list[Tensor]:
        return [v.value for v in self.state_variables]

    def assign(self, values: list[Tensor]) -> None:
        """Sets the state; a state that is not finite leaves it unchanged."""
        values = [
            ops.cast(ops.reshape(v, w.shape), w.dtype)
            for v, w in zip(values, self.state_variables, strict=True)
        ]
        ok = ops.all(ops.stack([ops.all(ops.isfinite(v)) for v in values] or [True]))
        for var, value in zip(self.state_variables, values, strict=True):
            var.assign(ops.where(ok, value, var.value))

    def tensors(self) -> NamedTuple:
        """The current state as the method's NamedTuple of tensors (what a
        learned method's `objective` differentiates)."""
        stored = iter(self.state_variables)
        return type(self.template)(
            *[
                self.learned_variables[f].value
                if f in self.learned_variables
                else next(stored).value
                for f in self.template._fields
            ]
        )

    def state(self) -> NamedTuple:
        """The current state as the method's NamedTuple of NumPy arrays,
        learned fields included (`UW().weights(losses, state)` gives the
        learned weights)."""
        return type(self.template)(*[ops.convert_to_numpy(v) for v in self.tensors()])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "balancer": balancers_module.serialize(self.balancer),
            "num_tasks": self.num_tasks,
            "dim": self.dim,
        }
