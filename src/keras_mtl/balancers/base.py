"""The one shape of every balancing method.

A method is a small frozen dataclass: its fields are its hyper-parameters,
which give `get_config`, `repr`, equality and hashing for free. It has two
pure functions, after the optax/torchjd style:

* `init(num_tasks, dim) -> state`: the initial state, a NamedTuple of NumPy
  arrays (`Empty()` for stateless methods);
* `update(inputs, state, ctx) -> (output, state)`: one step.

`inputs` (`Inputs`) always holds the task losses, and for gradient methods
the Gramian G = J J^T or the Jacobian J of the task losses (tasks x shared
parameters). The class attribute `level` says which, and what `output` is:

* `"loss"`: a **loss weighting** maps the losses to task weights w; the
  model minimises sum w_i L_i (EW, UW, DWA, RLW, GLS, IMTL-L, FAMO, STCH);
* `"gramian"`: a **Gramian weighting** maps G (and the losses) to task
  weights w; the update of the shared parameters is J^T w (MGDA, PCGrad,
  CAGrad, UPGrad, Nash-MTL, ...). Working on the small tasks x tasks Gramian
  keeps the cost of the method itself negligible, and every such weighting
  composes with the one aggregator `aggregate` (J^T w), as in torchjd;
* `"jacobian"`: a **Jacobian aggregator** maps J itself to the update, for
  the few methods that act coordinate by coordinate or keep gradient
  vectors as state (GradDrop, MoCo, DB-MTL).

Parameters a method learns with the model (UW's log-variances, IMTL-L's
scales) are fields of its state named in `learned`: the training step
keeps them in trainable Keras variables and minimises the method's
`objective`, so `weights(losses, state)` with a model's state
(`model.balancer_state.state()`) and saved files show the learned values.

Methods compute in NumPy (float64); the training step keeps the state in
Keras variables, so it is saved in `.keras` files and checkpoints and
travels through the JAX stateless step. Every method can be checked by hand:
`weights(...)` and `aggregate(jacobian)` take and return NumPy arrays.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import numpy as np

Array = np.ndarray


class Empty(NamedTuple):
    """The state of a stateless method."""


class Inputs(NamedTuple):
    """What one step gives a method.

    Attributes:
        losses: The task losses (k,).
        gramian: G = J J^T (k, k), for `level == "gramian"`.
        jacobian: J (k, parameters), for `level == "jacobian"`.
    """

    losses: Array
    gramian: Array | None = None
    jacobian: Array | None = None


class Context(NamedTuple):
    """What a method knows about the step besides its inputs.

    Attributes:
        step: Training steps taken before this one (0 first).
        epoch: The current epoch (0 first).
        rng: A generator seeded by the method's seed and `step`, so random
            methods are reproducible and resume exactly.
        present: Which tasks have labels in this batch (stateful methods
            see every task and must leave the absent ones alone; stateless
            methods only ever see the present ones).
    """

    step: int
    epoch: int
    rng: np.random.Generator
    present: np.ndarray | None = None

    def mask(self, k: int) -> np.ndarray:
        """`present`, or all True."""
        return (
            np.ones(k, bool) if self.present is None else np.asarray(self.present, bool)
        )


def context(
    seed: int | None, step: int = 0, epoch: int = 0, present: np.ndarray | None = None
) -> Context:
    """The `Context` of a step: the generator depends on (seed, step) only."""
    return Context(step, epoch, np.random.default_rng([seed or 0, step]), present)


@dataclasses.dataclass(frozen=True)
class Balancer:
    """Base of every balancing method (see the module docstring).

    Class attributes describe the method to the training step and to the
    property tests: `key` (its registry name), `level` (`"loss"`,
    `"gramian"` or `"jacobian"`), `claims` (properties it promises:
    `"non_conflicting"`, `"permutation_invariant"`, `"scale_invariant"`),
    `not_at_representation` (why representation-level mode is not defined
    for it; empty when it is), `learned` (state fields trained with the
    model) and `constant` (weights that never change: no host call).
    """

    key: ClassVar[str] = ""
    level: ClassVar[str] = ""
    claims: ClassVar[frozenset[str]] = frozenset()
    not_at_representation: ClassVar[str] = ""
    learned: ClassVar[tuple[str, ...]] = ()
    constant: ClassVar[bool] = False

    def init(self, num_tasks: int, dim: int = 0) -> NamedTuple:
        """The initial state for `num_tasks` tasks (`dim`: Jacobian columns,
        for methods that keep gradient vectors)."""
        del num_tasks, dim
        return Empty()

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        """One step: the task weights (or, at the Jacobian level, the
        update vector) and the new state."""
        raise NotImplementedError

    def objective(self, losses: Any, counts: Any, state: Any) -> tuple[Any, Any]:
        """For methods with `learned` state: the objective the model
        minimises (in `keras.ops`, differentiable in the learned fields of
        `state`) and the task weights it implies. `counts`: labelled
        samples per task in the batch."""
        raise NotImplementedError(f"{type(self).__name__} learns no parameters.")

    def head_factors(self, losses: Array, weights: Array) -> Array:
        """What each task's own head gradient is multiplied by (gradient
        methods). Default 1: a head learns from its own loss, whatever
        the weights of the shared update."""
        del weights
        return np.ones(len(losses))

    @property
    def seed(self) -> int | None:
        """The seed of a random method's draws (a `seed` field), else None."""
        return None

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: `balancers.get(key, **config)` rebuilds it."""
        return {
            f.metadata.get("config", f.name): _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }

    def __post_init__(self) -> None:
        """Gives each `int` and `float` field its declared type (one sentence
        for a value that is not a number), then runs `check`."""
        for f in dataclasses.fields(self):
            kind = _NUMBERS.get(str(f.type))
            if kind is None:
                continue
            value = getattr(self, f.name)
            try:
                number = kind(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{type(self).__name__}: {f.name} must be a number, got {value!r}."
                ) from None
            self._set(**{f.name: number})
        self.check()

    def check(self) -> None:
        """Raises one sentence for a hyperparameter out of its range."""

    def _set(self, **values: Any) -> None:
        """Sets fields of the frozen dataclass (in `__init__`/`__post_init__`)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _run(
        self, inputs: Inputs, state: NamedTuple | None, k: int, dim: int = 0
    ) -> Array:
        state = self.init(k, dim) if state is None else state
        return self.update(inputs, state, context(self.seed))[0]


_NUMBERS: dict[str, type] = {"int": int, "float": float}


def _plain(value: Any) -> Any:
    """A field's value as JSON-able config (tuples as lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class LossWeighting(Balancer):
    """Maps task losses to task weights; the model minimises sum w_i L_i.

    Weights are constants for the gradient: a method defined by an objective
    f(L) (geometric mean, log-sum-exp, ...) returns df/dL_i, which gives the
    same gradient.
    """

    level: ClassVar[str] = "loss"

    def weights(self, losses: Any, state: NamedTuple | None = None) -> Array:
        """The weights of one step, from `state` (default: the initial one).

        Example:
        >>> from keras_mtl.balancers import get
        >>> get("ew").weights([0.3, 2.0]).tolist()
        [1.0, 1.0]
        """
        losses = np.asarray(losses, dtype=np.float64)
        return self._run(Inputs(losses), state, len(losses))


@dataclasses.dataclass(frozen=True)
class GramianWeighting(Balancer):
    """Maps the Gramian G = J J^T (and the losses) to task weights w; the
    update of the shared parameters is J^T w."""

    level: ClassVar[str] = "gramian"
    #: The weights have a closed form, computed on the device
    #: (`on_device`) instead of on the host.
    device: ClassVar[bool] = False

    def runs_on_device(self, num_tasks: int, accelerator: bool) -> bool:
        """Whether `on_device` serves this many tasks, on an accelerator
        or on the CPU (`device` methods)."""
        return self.device

    def on_device(self, gramian: Any, present: Any) -> Any:
        """The weights in keras.ops, for a stateless method with a closed
        form (`device = True`): `gramian` (float32, tasks x tasks) has zero
        rows and columns for the tasks without labels in the batch, and
        `present` (float32 0/1) marks the others, which the weights must
        be computed from alone (as `update` on the present tasks' Gramian
        would)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form.")

    def on_device_at(self, gramian: Any, present: Any, step: Any) -> Any:
        """`on_device` at training step `step` (an integer tensor): what the
        step calls; a method whose draws depend on the step (PCGrad's task
        orders) overrides it."""
        del step
        return self.on_device(gramian, present)

    def weights(
        self, jacobian: Any, losses: Any = None, state: NamedTuple | None = None
    ) -> Array:
        """Task weights for a Jacobian (tasks x parameters), from `state`
        (default: the initial one)."""
        jacobian, losses = _as_arrays(jacobian, losses)
        inputs = Inputs(losses, gramian=jacobian @ jacobian.T)
        return self._run(inputs, state, len(losses))

    def aggregate(
        self, jacobian: Any, losses: Any = None, state: NamedTuple | None = None
    ) -> Array:
        """The update J^T w for a Jacobian (tasks x parameters).

        Example:
        >>> from keras_mtl.balancers import get
        >>> get("mean").aggregate([[-4.0, 1, 1], [6, 1, 1]]).tolist()
        [1.0, 1.0, 1.0]
        """
        jacobian = np.asarray(jacobian, dtype=np.float64)
        return self.weights(jacobian, losses, state) @ jacobian


@dataclasses.dataclass(frozen=True)
class JacobianAggregator(Balancer):
    """Maps the Jacobian itself (and the losses) to an update."""

    level: ClassVar[str] = "jacobian"

    def aggregate(
        self, jacobian: Any, losses: Any = None, state: NamedTuple | None = None
    ) -> Array:
        """The update for a Jacobian (tasks x parameters), from `state`
        (default: the initial one)."""
        jacobian, losses = _as_arrays(jacobian, losses)
        inputs = Inputs(losses, jacobian=jacobian)
        return self._run(inputs, state, *jacobian.shape)


def _as_arrays(jacobian: Any, losses: Any) -> tuple[Array, Array]:
    """A Jacobian (tasks x parameters) and its losses (default: ones) as floats."""
    jacobian = np.asarray(jacobian, dtype=np.float64)
    if losses is None:
        return jacobian, np.ones(len(jacobian))
    return jacobian, np.asarray(losses, np.float64)


def check_positive(owner: Balancer, **values: float) -> None:
    """Raises one sentence for a hyperparameter that must be > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(
                f"{type(owner).__name__}: {name} must be > 0, got {value}."
            )


def check_unit(owner: Balancer, **values: float) -> None:
    """Raises one sentence for a hyperparameter that must lie in [0, 1]."""
    for name, value in values.items():
        if not 0 <= value <= 1:
            raise ValueError(
                f"{type(owner).__name__}: {name} must be in [0, 1], got {value}."
            )


def check_at_least(owner: Balancer, bound: float, **values: float) -> None:
    """Raises one sentence for a hyperparameter that must be >= `bound`."""
    for name, value in values.items():
        if not value >= bound:
            raise ValueError(
                f"{type(owner).__name__}: {name} must be >= {bound:g}, got {value}."
            )
