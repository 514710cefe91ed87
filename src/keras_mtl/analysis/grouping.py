"""Task groups from an affinity matrix: the network selection of Fifty et
al. 2021, "Efficiently Identifying Task Groupings for Multi-Task Learning"
(https://arxiv.org/abs/2109.04617), and groups written as text."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Grouping:
    """Task groups and what the affinity predicts for them.

    Attributes:
        groups: The groups, each a list of task names.
        assignment: For each task, the group (index into `groups`) whose
            model serves it: the one that gives it the most affinity.
        score: The sum over tasks of the affinity their group gives them
            (the search's objective: higher is better, 0 for all alone).
        per_task: Each task's share of `score`.
    """

    groups: list[list[str]]
    assignment: dict[str, int]
    score: float
    per_task: dict[str, float]

    def format(self) -> str:
        """`{a, b} {c}`-style text with the predicted score."""
        parts = ["{" + ", ".join(g) + "}" for g in self.groups]
        return f"{' '.join(parts)} (affinity score {self.score:+.4f})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "assignment": self.assignment,
            "score": self.score,
            "per_task": self.per_task,
        }


def _group_scores(affinity: np.ndarray, members: Sequence[int]) -> np.ndarray:
    """What group `members` gives each task (0 outside it and when alone)."""
    out = np.zeros(affinity.shape[0])
    if len(members) < 2:
        return out
    for j in members:
        others = [i for i in members if i != j]
        out[j] = float(np.mean(affinity[others, j]))
    return out


def select_groups(
    affinity: Any, tasks: Sequence[str], budget: int | None = None
) -> Grouping:
    """The paper's network selection over an affinity matrix.

    Args:
        affinity: (tasks, tasks), `[i, j]` the affinity of i onto j.
        tasks: Task names.
        budget: At most this many groups (default: half the tasks, >= 2).

    Returns:
        The best `Grouping` (exhaustive up to 6 tasks, greedy beyond).

    Example:
    >>> z = np.array([[0, .2, -.1], [.3, 0, -.2], [-.1, -.3, 0]])
    >>> select_groups(z, ["a", "b", "c"], budget=2).groups
    [['a', 'b'], ['c']]
    """
    z = np.asarray(affinity, dtype=np.float64)
    n = len(tasks)
    if z.shape != (n, n):
        raise ValueError(
            f"The affinity matrix is {z.shape}, expected ({n}, {n}) for tasks "
            f"{', '.join(tasks)}."
        )
    budget = max(2, n // 2) if budget is None else int(budget)
    if budget < 1:
        raise ValueError(f"budget must be >= 1 group, got {budget}.")
    subsets = [
        members
        for size in range(1, n + 1)
        for members in itertools.combinations(range(n), size)
    ]
    scores = np.stack([_group_scores(z, s) for s in subsets])
    covers = np.zeros((len(subsets), n), dtype=bool)
    for k, s in enumerate(subsets):
        covers[k, list(s)] = True

    def value(chosen: Sequence[int]) -> float:
        return float(scores[list(chosen)].max(axis=0).sum())

    best: tuple[float, tuple[int, ...]] | None = None
    if n <= 6:
        for size in range(1, min(budget, n) + 1):
            for chosen in itertools.combinations(range(len(subsets)), size):
                if not covers[list(chosen)].any(axis=0).all():
                    continue
                v = value(chosen)
                if best is None or v > best[0] + 1e-12:
                    best = (v, chosen)
    else:
        chosen: list[int] = []
        while len(chosen) < budget:
            gains = [
                (value([*chosen, k]) if chosen else scores[k].sum(), k)
                for k in range(len(subsets))
                if k not in chosen
            ]
            chosen.append(max(gains)[1])
        uncovered = ~covers[chosen].any(axis=0)
        # Tasks no chosen group covers train alone.
        chosen += [subsets.index((j,)) for j in np.flatnonzero(uncovered)]
        best = (value(chosen), tuple(chosen))
    assert best is not None
    chosen = sorted(best[1], key=lambda k: (-len(subsets[k]), subsets[k]))
    groups = [[tasks[i] for i in subsets[k]] for k in chosen]
    assignment, per_task = {}, {}
    for j, name in enumerate(tasks):
        options = [(scores[k][j], -g) for g, k in enumerate(chosen) if covers[k, j]]
        top, neg_index = max(options)
        assignment[name] = -neg_index
        per_task[name] = float(top)
    return Grouping(groups, assignment, float(best[0]), per_task)


def grouping_from_text(text: str, tasks: Sequence[str]) -> list[list[str]]:
    """Parses `"a,b;c"` into groups, checking every task is named.

    Example:
    >>> grouping_from_text("a, b; c", ["a", "b", "c"])
    [['a', 'b'], ['c']]
    """
    groups = [[t.strip() for t in g.split(",") if t.strip()] for g in text.split(";")]
    groups = [g for g in groups if g]
    named = {t for g in groups for t in g}
    unknown = sorted(named - set(tasks))
    if unknown:
        raise ValueError(
            f"The groups name {unknown[0]!r}, which is not a task; the tasks are "
            f"{', '.join(tasks)}."
        )
    missing = [t for t in tasks if t not in named]
    if missing:
        raise ValueError(
            f"The groups leave out task {missing[0]!r}; every task must be in a "
            "group (a group of one trains it alone)."
        )
    return groups
