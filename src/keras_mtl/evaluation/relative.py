"""Multi-task evaluation: Δm% against single-task baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def delta_m(
    results: Mapping[str, Any],
    baselines: Mapping[str, Any],
    higher_is_better: bool | Mapping[str, bool] = True,
) -> float:
    """Δm% as LibMTL defines it (Maninis et al. 2019; Vandenhende et al.
    2021): the mean over tasks of the mean relative gain over each task's
    metrics, in percent, the sign flipped for metrics where lower is better.

    Args:
        results: The multi-task model's scores: `{task: score}`, or
            `{task: {metric: score}}` for several metrics per task.
        baselines: The single-task models' scores, in the same form.
        higher_is_better: One bool for every score, or a dict by metric name
            (nested form) or by task name (plain form);
            `keras_mtl.evaluation.scoring.HIGHER_IS_BETTER` knows the library's metrics.

    Example:
    >>> delta_m({"a": 0.75, "b": 0.5}, {"a": 0.5, "b": 0.5})
    25.0
    >>> delta_m({"a": {"auc": 0.9}, "b": {"mae": 1.0}},
    ...         {"a": {"auc": 0.8}, "b": {"mae": 2.0}},
    ...         {"auc": True, "mae": False})
    31.25
    """
    if not results:
        raise ValueError("delta_m needs at least one task.")
    per_task = []
    for task, metrics in results.items():
        if task not in baselines:
            raise ValueError(f"No single-task baseline for task {task!r}.")
        base_scores = baselines[task]
        if not isinstance(metrics, Mapping):
            # The plain form: one score per task, its direction keyed by task.
            metrics, base_scores = {task: metrics}, {task: base_scores}
        elif not isinstance(base_scores, Mapping):
            raise ValueError(
                f"Task {task!r}: results give metrics {sorted(metrics)} but the "
                f"baseline is one number ({base_scores!r}); give both in one form."
            )
        gains = []
        for metric, value in metrics.items():
            base = base_scores.get(metric)
            if base is None:
                raise ValueError(f"No baseline {metric!r} for task {task!r}.")
            if isinstance(higher_is_better, bool):
                higher = higher_is_better
            elif metric in higher_is_better:
                higher = bool(higher_is_better[metric])
            else:
                raise ValueError(f"Say whether higher is better for {metric!r}.")
            if base == 0:
                raise ValueError(
                    f"Baseline {metric!r} of task {task!r} is 0: no relative gain."
                )
            sign = 1.0 if higher else -1.0
            gains.append(sign * (float(value) - float(base)) / abs(float(base)))
        per_task.append(sum(gains) / len(gains))
    return 100.0 * sum(per_task) / len(per_task)


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation and 95% t-interval of seed results.

    Example:
    >>> s = summarize([0.8, 0.9, 1.0])
    >>> round(s["mean"], 3), round(s["std"], 3), [round(v, 3) for v in s["ci95"]]
    (0.9, 0.1, [0.652, 1.148])
    """
    import math

    import numpy as np
    from scipy import stats

    array = np.asarray([v for v in values if v == v], dtype=np.float64)  # drop NaN
    n = len(array)
    if n == 0:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "ci95": [float("nan")] * 2,
            "n": 0,
        }
    mean = float(array.mean())
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": [mean, mean], "n": 1}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}
