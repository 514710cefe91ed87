"""Inter-task affinity, measured while a shared model trains, and task groups.

Lookahead affinity (Fifty et al. 2021, "Efficiently Identifying Task
Groupings for Multi-Task Learning", NeurIPS, https://arxiv.org/abs/2109.04617):
at a training step t with batch X, take one optimizer step on task i's loss
alone, applied to the shared parameters only, and see what it does to task
j's loss on the same batch:

    Z[i, j] = 1 - L_j(X, shared after the step on i) / L_j(X, shared now)

Positive: learning i lowers j's loss (i helps j); negative: it raises it.
Averaged over the measured steps. Beside it the mean cosine of the tasks'
gradients on the shared parameters, the quantity gradient-surgery methods
(PCGrad, GradVac, ...) act on.

Groups (the paper's network selection): choose at most `budget` groups of
tasks, each trained as one multi-task model, every task in at least one
group, to maximise the sum over tasks of the best mean affinity that a group
containing it gives it (`mean over i in G, i != j of Z[i, j]`; a task alone
scores 0). Searched exhaustively over all subsets for up to 6 tasks (a
greedy search past that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_mtl import backend as mtl_backend
from keras_mtl.analysis.grouping import (
    Grouping,
    select_groups,
)
from keras_mtl.models.sharing import split_model


@dataclass
class TaskAffinity:
    """Affinities measured during training.

    Attributes:
        tasks: Task names, the order of both matrices' rows and columns.
        lookahead: (tasks, tasks): `[i, j]` is the mean lookahead affinity of
            a step on task i onto task j's loss (the diagonal: onto itself).
        cosine: (tasks, tasks): the mean cosine of the tasks' gradients on
            the shared parameters.
        measurements: How many steps were measured (per pair: those where
            both tasks had labels in the batch).
    """

    tasks: list[str]
    lookahead: np.ndarray
    cosine: np.ndarray
    measurements: np.ndarray = field(repr=False)

    def group(self, budget: int | None = None) -> Grouping:
        """The best grouping with at most `budget` groups (default: half the
        tasks, at least 2)."""
        return select_groups(self.lookahead, self.tasks, budget)

    def format(self) -> str:
        """Both matrices as text (rows: the task stepped on; columns: the
        task whose loss moves)."""
        width = max(9, max(len(t) for t in self.tasks) + 2)
        lines = []
        for title, matrix in (
            ("lookahead affinity (row i helps column j when > 0)", self.lookahead),
            ("gradient cosine on the shared parameters", self.cosine),
        ):
            lines.append(title)
            lines.append(" " * width + "".join(f"{t:>{width}}" for t in self.tasks))
            for name, row in zip(self.tasks, matrix, strict=True):
                lines.append(
                    f"{name:<{width}}" + "".join(f"{v:>{width}.4f}" for v in row)
                )
            lines.append("")
        return "\n".join(lines).rstrip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "lookahead": self.lookahead.tolist(),
            "cosine": self.cosine.tolist(),
            "measurements": self.measurements.tolist(),
        }

    def plot(self, path: Any) -> bool:
        """Draws both matrices as heat maps into a PNG; False without
        matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            return False
        n = len(self.tasks)
        fig, axes = plt.subplots(1, 2, figsize=(4 + 2.2 * n, 1.5 + 1.1 * n))
        for ax, matrix, title in (
            (axes[0], self.lookahead, "lookahead affinity"),
            (axes[1], self.cosine, "gradient cosine"),
        ):
            bound = float(np.nanmax(np.abs(matrix))) or 1.0
            image = ax.imshow(matrix, cmap="RdBu", vmin=-bound, vmax=bound)
            ax.set_xticks(range(n), self.tasks, rotation=45, ha="right")
            ax.set_yticks(range(n), self.tasks)
            ax.set_xlabel("task whose loss moves")
            ax.set_ylabel("task stepped on")
            ax.set_title(title)
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center")
            fig.colorbar(image, ax=ax, shrink=0.8)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return True


class AffinityRecorder(keras.callbacks.Callback):
    """Measures lookahead affinity and gradient cosines every `every`
    training steps, on a batch from `batch(k)` (k counts the measurements).

    Args:
        batch: Returns `(x, y)` of the k-th measurement batch.
        every: Steps between measurements.
    """

    def __init__(self, batch: Callable[[int], tuple[Any, Any]], every: int) -> None:
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 step, got {every}.")
        self.batch = batch
        self.every = int(every)
        self.steps = 0
        self.sums: dict[str, np.ndarray] = {}

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.steps += 1
        if self.steps % self.every:
            return
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()
        x, y = self.batch(self.steps // self.every - 1)
        look, cos, ok = measure(self.model, x, y)
        for key, value in (("look", look), ("cos", cos), ("n", ok)):
            self.sums[key] = self.sums.get(key, 0) + np.where(ok, value, 0.0)

    def result(self) -> TaskAffinity:
        if not self.sums:
            raise ValueError(
                f"No step was measured: training ran {self.steps} steps, fewer "
                f"than every={self.every}."
            )
        n = self.sums["n"]
        with np.errstate(invalid="ignore", divide="ignore"):
            look = self.sums["look"] / n
            cos = self.sums["cos"] / n
        return TaskAffinity(list(self.model.task_names), look, cos, n.astype(np.int64))


def measure(model: Any, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One measurement on batch (x, y).

    Returns:
        `(lookahead, cosine, valid)`, (tasks, tasks) each; `valid[i, j]` is
        False where task i or j has no label in the batch.
    """
    split = split_model(model)
    if split is None:
        raise ValueError(
            "Task affinity needs variables that two or more tasks share; this "
            "model shares none."
        )
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    index = {id(v): k for k, v in enumerate(model.trainable_variables)}
    shared_pos = [index[id(v)] for v in split.shared]

    def losses_of(shared: list[Any]) -> Any:
        values = list(trainable)
        for k, value in zip(shared_pos, shared, strict=True):
            values[k] = value
        preds, _ = model.stateless_call(values, non_trainable, x, training=False)
        losses, _ = model.task_losses(y, preds)
        return ops.stack(losses)

    shared_now = [trainable[k] for k in shared_pos]
    # One forward pass gives the losses now and which tasks have labels.
    preds, _ = model.stateless_call(trainable, non_trainable, x, training=False)
    losses_now, counts = model.task_losses(y, preds)
    before = keras.ops.convert_to_numpy(ops.stack(losses_now)).astype(np.float64)
    labelled = np.array([float(keras.ops.convert_to_numpy(c)) > 0 for c in counts])
    jacobian = mtl_backend.task_gradients(losses_of, shared_now)
    k = len(model.task_names)
    rows = np.concatenate([j.reshape(k, -1) for j in jacobian], axis=1)
    norms = np.linalg.norm(rows, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = rows @ rows.T / np.outer(norms, norms)
    lookahead = np.zeros((k, k))
    # The step is the optimizer's own update (Adam's moments included),
    # applied to the shared variables and then undone: the variables and the
    # optimizer's state are restored exactly (`stateless_apply` does not
    # exist on TensorFlow). The compiled optimizer, not the non-finite guard
    # around it.
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    saved_vars = [keras.ops.convert_to_numpy(v.value) for v in split.shared]
    saved_opt = [keras.ops.convert_to_numpy(v.value) for v in optimizer.variables]
    try:
        for i in range(k):
            grads = [
                ops.convert_to_tensor(g[i], dtype=v.dtype)
                for g, v in zip(jacobian, split.shared, strict=True)
            ]
            optimizer.apply(grads, split.shared)
            after = keras.ops.convert_to_numpy(
                losses_of([v.value for v in split.shared])
            ).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                lookahead[i] = 1.0 - after / before
            for v, value in zip(split.shared, saved_vars, strict=True):
                v.assign(value)
            for v, value in zip(optimizer.variables, saved_opt, strict=True):
                v.assign(value)
    finally:
        for v, value in zip(split.shared, saved_vars, strict=True):
            v.assign(value)
        for v, value in zip(optimizer.variables, saved_opt, strict=True):
            v.assign(value)
    valid = np.outer(labelled, labelled) & np.isfinite(lookahead) & np.isfinite(cosine)
    valid &= np.outer(norms > 0, norms > 0)
    return lookahead, cosine, valid


def batches_of(x: Any, y: Any, batch_size: int, seed: int) -> Callable[[int], Any]:
    """Measurement batches: rows drawn from arrays, or batches of a data set."""
    if isinstance(x, keras.utils.PyDataset):

        def from_dataset(k: int) -> tuple[Any, Any]:
            rng = np.random.default_rng([seed, k])
            item = x[int(rng.integers(0, len(x)))]
            return item[0], item[1]

        return from_dataset
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)

    def take(value: Any, rows: np.ndarray) -> Any:
        if isinstance(value, dict):
            return {k: np.asarray(v)[rows] for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [np.asarray(v)[rows] for v in value]
        return np.asarray(value)[rows]

    def from_arrays(k: int) -> tuple[Any, Any]:
        rng = np.random.default_rng([seed, k])
        rows = rng.choice(n, size=min(batch_size, n), replace=False)
        return take(x, rows), take(y, rows)

    return from_arrays


def task_affinity(
    model: Any,
    x: Any,
    y: Any = None,
    every: int = 10,
    measure_batch_size: int = 256,
    seed: int = 0,
    **fit_kwargs: Any,
) -> TaskAffinity:
    """Trains a compiled multi-task model with `fit` and measures its tasks'
    affinities along the way (see the module docstring).

    Args:
        model: A compiled `MultiTaskModel` whose tasks share variables.
        x: Training inputs (arrays or a dict of arrays), or a
            `keras.utils.PyDataset` of `(x, y)` batches (`MixedBatches`).
        y: Training labels for array inputs.
        every: Measure every this many training steps.
        measure_batch_size: Samples per measurement (array inputs; a data
            set's own batch otherwise).
        seed: Seed of the measurement batches.
        **fit_kwargs: Passed to `model.fit` (`epochs`, `batch_size`,
            `validation_data`, ...).

    Returns:
        A `TaskAffinity`; `.group(budget)` recommends task groups.

    Example:
    >>> import keras, numpy as np
    >>> from keras_mtl import Task, build_model
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 4)).astype("float32")
    >>> y = {"a": (x[:, 0] > 0) * 1.0, "b": (x[:, 1] > 0) * 1.0}
    >>> model = build_model({"x": (4,)}, keras.layers.Dense(8),
    ...                     [Task("a"), Task("b")])
    >>> model.compile(optimizer="sgd")
    >>> affinity = task_affinity(model, {"x": x}, y, every=4, epochs=1,
    ...                          batch_size=32, verbose=0)
    >>> affinity.lookahead.shape, bool((affinity.lookahead.diagonal() > 0).all())
    ((2, 2), True)
    """
    recorder = AffinityRecorder(batches_of(x, y, measure_batch_size, seed), every)
    callbacks = list(fit_kwargs.pop("callbacks", None) or []) + [recorder]
    model.fit(x, y, callbacks=callbacks, **fit_kwargs)
    return recorder.result()


__all__ = [
    "AffinityRecorder",
    "batches_of",
    "TaskAffinity",
    "measure",
    "task_affinity",
]
