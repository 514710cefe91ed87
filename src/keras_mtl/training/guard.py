"""The non-finite guard: an optimizer that skips steps it cannot apply.

`FiniteGuard` wraps the optimizer a model is compiled with, as Keras's own
`keras.optimizers.LossScaleOptimizer` wraps one for mixed precision: a step
whose gradients are not all finite leaves the weights and the optimizer's
state (its iteration count included) as they were, and the model hears
of it through `report`. It is one class for every backend and every train
step, Keras's own and the balanced one; how a step is applied on the
running backend (across replicas too) is the backend module's
`guarded_apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from keras_mtl import backend as mtl_backend

Report = Callable[[Any], None]


@keras.saving.register_keras_serializable(package="keras_mtl")
class FiniteGuard(keras.optimizers.Optimizer):
    """Applies `inner_optimizer`'s step only when every gradient is finite.

    It holds no state of its own: `variables`, `iterations` and
    `learning_rate` are the inner optimizer's, so a saved file or a
    checkpoint holds exactly what the inner optimizer alone would.

    Args:
        inner_optimizer: The optimizer that takes the steps.
        report: Called with each step's flag (a boolean tensor: every
            gradient finite); None checks nothing and applies every step.
        name: The optimizer's name.
    """

    def __init__(
        self,
        inner_optimizer: keras.optimizers.Optimizer,
        report: Report | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(learning_rate=0.0, name=name or "finite_guard")
        self.inner_optimizer = inner_optimizer
        self.report = report

    def __dir__(self) -> list[str]:
        # The saver walks attributes: the inner optimizer's variables are
        # saved once, as this optimizer's own (`variables`), the layout of a
        # file written without the guard.
        return [n for n in super().__dir__() if n != "inner_optimizer"]

    def build(self, var_list: list[Any]) -> None:
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self) -> list[Any]:
        return self.inner_optimizer.variables

    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    def scale_loss(self, loss: Any) -> Any:
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list: list[Any]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    def stateless_apply(
        self, optimizer_variables: Any, grads: Any, trainable_variables: Any
    ) -> tuple[list[Any], list[Any]]:
        new_t, new_o = self.inner_optimizer.stateless_apply(
            optimizer_variables, grads, trainable_variables
        )
        if self.report is None:
            return new_t, new_o
        ok = all_finite(grads)
        self.report(ok)

        def keep(new: list[Any], old: list[Any]) -> list[Any]:
            return [ops.where(ok, n, o) for n, o in zip(new, old, strict=True)]

        return keep(new_t, trainable_variables), keep(new_o, optimizer_variables)

    def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
        return mtl_backend.guarded_apply(
            self.inner_optimizer.apply,
            grads,
            trainable_variables,
            all_finite,
            self.report,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: Any = None
    ) -> FiniteGuard:
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


def all_finite(grads: Any) -> Any:
    """A boolean scalar: every gradient entry is finite."""
    flags = [ops.all(ops.isfinite(g)) for g in grads if g is not None]
    if not flags:
        return ops.convert_to_tensor(True)
    return ops.all(ops.stack(flags))


def guarded(optimizer: Any, report: Report | None) -> Any:
    """`optimizer` behind a `FiniteGuard` that reports to `report` (None:
    no check); an optimizer already guarded gets the new report."""
    if optimizer is None:
        return None
    if isinstance(optimizer, FiniteGuard):
        optimizer.report = report
        return optimizer
    return FiniteGuard(optimizer, report)
