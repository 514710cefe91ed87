"""The two levels of balancing methods, after the field's best designs.

* A **loss weighting** maps the vector of task losses (and its state) to task
  weights (EW, UW, DWA, RLW, GLS, IMTL-L, FAMO, STCH, ...).
* A **Gramian weighting** maps the Gramian G = J J^T of the Jacobian J of the
  task losses (tasks x shared parameters) to task weights w; the update is
  J^T w (MGDA, PCGrad, CAGrad, UPGrad, Nash-MTL, ...). Working on the small
  tasks x tasks Gramian keeps the cost of the method itself negligible.
* A **Jacobian aggregator** maps J itself to an update, for the few methods
  that act coordinate by coordinate or keep gradient vectors as state
  (GradDrop, MoCo, DB-MTL).

Methods are small objects computed in NumPy (float64). `init` gives their
state as a NamedTuple of arrays; the training step keeps it in Keras
variables, so it is saved in `.keras` files and checkpoints and travels
through the JAX stateless step. Every method can be checked by hand:
`aggregate(jacobian)` and `weights(...)` take and return NumPy arrays.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np

Array = np.ndarray


class Empty(NamedTuple):
    """The state of a stateless method."""


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


class Balancer:
    """Base of every balancing method.

    Class attributes describe the method to the training step and to the
    property tests: `key` (its registry name), `level` (`"loss"`,
    `"gramian"` or `"jacobian"`), `claims` (properties it promises:
    `"non_conflicting"`, `"permutation_invariant"`, `"scale_invariant"`),
    and `representation` (True when representation-level mode is defined
    for it, else the reason it is not).
    """

    key: ClassVar[str] = ""
    level: ClassVar[str] = ""
    claims: ClassVar[frozenset[str]] = frozenset()
    representation: ClassVar[bool | str] = True
    #: Whether the method draws random numbers (then it takes a `seed`).
    random: ClassVar[bool] = False

    def init(self, num_tasks: int, dim: int = 0) -> NamedTuple:
        """The initial state for `num_tasks` tasks (`dim`: Jacobian columns,
        for methods that keep gradient vectors)."""
        del num_tasks, dim
        return Empty()

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: `balancers.get(key, **config)` rebuilds it."""
        return {}

    def head_factors(self, losses: Array, weights: Array) -> Array:
        """What each task's own head gradient is multiplied by (gradient
        methods). Default 1: a head learns from its own loss, whatever
        the weights of the shared update."""
        del weights
        return np.ones(len(losses))

    @property
    def seed(self) -> int | None:
        return getattr(self, "_seed", None)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))


class LossWeighting(Balancer):
    """Maps task losses to task weights; the model minimises sum w_i L_i.

    Weights are constants for the gradient: a method defined by an objective
    f(L) (geometric mean, log-sum-exp, ...) returns df/dL_i, which gives the
    same gradient.
    """

    level = "loss"
    #: Trainable parameters optimised with the model (UW, IMTL-L).
    parametric: ClassVar[bool] = False
    #: Weights that never change (EW, fixed): no host call in the step.
    constant: ClassVar[bool] = False

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        """Weights for one step, and the new state."""
        raise NotImplementedError

    def weights(self, losses: Any) -> Array:
        """The weights of one step from the initial state (for checks).

        Example:
        >>> from keras_mtl.balancers import get
        >>> get("ew").weights([0.3, 2.0]).tolist()
        [1.0, 1.0]
        """
        losses = np.asarray(losses, dtype=np.float64)
        state = self.init(len(losses))
        return self.weigh(losses, state, context(self.seed))[0]


class GramianWeighting(Balancer):
    """Maps the Gramian G = J J^T (and the losses) to task weights w; the
    update of the shared parameters is J^T w."""

    level = "gramian"
    #: Whether the method reads the losses besides the Gramian.
    uses_losses: ClassVar[bool] = False

    def weigh(
        self, gramian: Array, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        """Weights for one step, and the new state."""
        raise NotImplementedError

    def weights(self, jacobian: Any, losses: Any = None) -> Array:
        """Task weights for a Jacobian (tasks x parameters), from the initial
        state."""
        jacobian = np.asarray(jacobian, dtype=np.float64)
        k = jacobian.shape[0]
        losses = np.ones(k) if losses is None else np.asarray(losses, np.float64)
        state = self.init(k)
        return self.weigh(jacobian @ jacobian.T, losses, state, context(self.seed))[0]

    def aggregate(self, jacobian: Any, losses: Any = None) -> Array:
        """The update J^T w for a Jacobian (tasks x parameters).

        Example:
        >>> from keras_mtl.balancers import get
        >>> get("mean").aggregate([[-4.0, 1, 1], [6, 1, 1]]).tolist()
        [1.0, 1.0, 1.0]
        """
        jacobian = np.asarray(jacobian, dtype=np.float64)
        return self.weights(jacobian, losses) @ jacobian


class JacobianAggregator(Balancer):
    """Maps the Jacobian itself (and the losses) to an update."""

    level = "jacobian"

    def combine(
        self, jacobian: Array, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        """The update for one step, and the new state."""
        raise NotImplementedError

    def aggregate(self, jacobian: Any, losses: Any = None) -> Array:
        """The update for a Jacobian (tasks x parameters), from the initial
        state."""
        jacobian = np.asarray(jacobian, dtype=np.float64)
        k, n = jacobian.shape
        losses = np.ones(k) if losses is None else np.asarray(losses, np.float64)
        state = self.init(k, n)
        return self.combine(jacobian, losses, state, context(self.seed))[0]


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
