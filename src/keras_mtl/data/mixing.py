"""Batches mixed from several data sets, one task or more each."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

SAMPLINGS = ("proportional", "uniform", "temperature")


@dataclass
class Source:
    """One data set: its inputs and the labels of the tasks it has."""

    name: str
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.x.values())))


def missing_label(task: Any, shape: tuple) -> np.ndarray:
    """A label array marking every sample unlabelled for `task`."""
    if task.kind == "multiclass":
        return np.full(shape, -1, dtype=np.int32)
    return np.full(shape, np.nan, dtype=np.float32)


def probabilities(
    sizes: Sequence[int], sampling: str, temperature: float
) -> np.ndarray:
    """How often each source is drawn.

    Example:
    >>> probabilities([100, 400], "temperature", 2.0).round(3).tolist()
    [0.333, 0.667]
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    if sampling == "proportional":
        weights = sizes
    elif sampling == "uniform":
        weights = np.ones_like(sizes)
    elif sampling == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        weights = sizes ** (1.0 / temperature)
    else:
        raise ValueError(
            f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}."
        )
    return weights / weights.sum()


@dataclass
class MixedBatches(keras.utils.PyDataset):
    """Training batches drawn from several sources.

    Each batch draws its number of samples from each source (multinomial by
    the sampling probabilities), then the samples (uniformly, with
    replacement); a sample's label for a task its source lacks is missing
    (NaN, or -1 for class ids), so the loss of that task skips it. Draws
    depend on (seed, epoch, batch index) only: an epoch replays exactly.

    Args:
        sources: The data sets.
        tasks: The model's tasks.
        batch_size: Samples per batch.
        sampling: `"proportional"` (to size), `"uniform"`, or
            `"temperature"` (size^(1/T)).
        temperature: T for temperature sampling.
        steps: Batches per epoch (default: all samples once on average).
        seed: Seed of the draws.
    """

    sources: list[Source]
    tasks: list[Any]
    batch_size: int = 64
    sampling: str = "proportional"
    temperature: float = 2.0
    steps: int | None = None
    seed: int = 0
    epoch: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        super().__init__()
        if not self.sources:
            raise ValueError("MixedBatches needs at least one source.")
        names = set(next(iter(self.sources)).x)
        for source in self.sources:
            if set(source.x) != names:
                raise ValueError(
                    f"Source {source.name!r} has inputs {sorted(source.x)}, "
                    f"the others {sorted(names)}."
                )
            if len(source) == 0:
                raise ValueError(f"Source {source.name!r} has no samples.")
        self.p = probabilities(
            [len(s) for s in self.sources], self.sampling, self.temperature
        )

    def __len__(self) -> int:
        if self.steps is not None:
            return int(self.steps)
        total = sum(len(s) for s in self.sources)
        return max(1, math.ceil(total / self.batch_size))

    def only(self, tasks: list[str]) -> MixedBatches:
        """The batches of `tasks` alone: the sources that label one of them,
        drawn with the same sampling, seed and `steps`."""
        return MixedBatches(
            [s for s in self.sources if any(t in s.y for t in tasks)],
            [t for t in self.tasks if t.name in tasks],
            self.batch_size,
            self.sampling,
            self.temperature,
            self.steps,
            self.seed,
        )

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        counts = rng.multinomial(self.batch_size, self.p)
        xs: dict[str, list[np.ndarray]] = {k: [] for k in self.sources[0].x}
        ys: dict[str, list[np.ndarray]] = {t.name: [] for t in self.tasks}
        for source, count in zip(self.sources, counts, strict=True):
            if count == 0:
                continue
            rows = rng.integers(0, len(source), count)
            for k, v in source.x.items():
                xs[k].append(v[rows])
            for task in self.tasks:
                if task.name in source.y:
                    ys[task.name].append(source.y[task.name][rows])
                else:
                    ys[task.name].append(missing_label(task, (count,)))
        x = {k: np.concatenate(v) for k, v in xs.items()}
        y = {k: np.concatenate(v) for k, v in ys.items()}
        return x, y

    def on_epoch_end(self) -> None:
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Draw the batches of epoch `epoch` (what `fit` sets each epoch)."""
        self.epoch = int(epoch)

    def describe(self) -> str:
        """The sampling, in words."""
        parts = ", ".join(
            f"{s.name} {len(s)} samples p={p:.3f}"
            for s, p in zip(self.sources, self.p, strict=True)
        )
        return (
            f"{len(self)} batches of {self.batch_size} per epoch, {self.sampling} "
            f"sampling: {parts}."
        )
