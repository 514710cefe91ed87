"""Multi-task evaluation: Δm% against single-task baselines."""

from __future__ import annotations

from collections.abc import Mapping


def delta_m(
    results: Mapping[str, Mapping[str, float]],
    baselines: Mapping[str, Mapping[str, float]],
    higher_is_better: Mapping[str, bool],
) -> float:
    """Δm% as LibMTL defines it (Maninis et al. 2019; Vandenhende et al.
    2021): the mean over tasks of the mean relative gain over each task's
    metrics, in percent, the sign flipped for metrics where lower is better.

    Args:
        results: task -> metric -> value of the multi-task model.
        baselines: task -> metric -> value of the single-task model.
        higher_is_better: metric -> whether higher is better.

    Example:
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
        gains = []
        for metric, value in metrics.items():
            base = baselines[task].get(metric)
            if base is None:
                raise ValueError(f"No baseline {metric!r} for task {task!r}.")
            if metric not in higher_is_better:
                raise ValueError(f"Say whether higher is better for metric {metric!r}.")
            if base == 0:
                raise ValueError(
                    f"Baseline {metric!r} of task {task!r} is 0: no relative gain."
                )
            sign = 1.0 if higher_is_better[metric] else -1.0
            gains.append(sign * (value - base) / abs(base))
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
