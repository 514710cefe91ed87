"""PNG plots of a training run: learning curves, task weights, gradient cosines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lines(axis: Any, series: dict[str, list[float]], ylabel: str, title: str) -> None:
    """One line per series, over epochs 1, 2, ..."""
    for label, values in series.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=label)
    axis.set_xlabel("epoch")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()


def _save(plt: Any, figure: Any, path: Path) -> bool:
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return True


def _first_multi(result: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in result.get("runs", []) if r["model"] == "multi_task"), None)


def learning_curves(history: dict[str, list[float]], path: Path) -> bool:
    """Per-task training and validation loss per epoch."""
    tasks = sorted(
        k[: -len("_loss")]
        for k in history
        if k.endswith("_loss") and not k.startswith("val_") and k != "loss"
    )
    if not tasks:
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(
        1, len(tasks), figsize=(4 * len(tasks), 3), squeeze=False
    )
    for axis, task in zip(axes[0], tasks, strict=True):
        series = {"train": history[f"{task}_loss"]}
        if f"val_{task}_loss" in history:
            series["validation"] = history[f"val_{task}_loss"]
        _lines(axis, series, "loss", task)
    return _save(plt, figure, path)


def task_weights(history: dict[str, list[float]], path: Path) -> bool:
    """The balancer's task weights at the end of each epoch."""
    keys = sorted(k for k in history if k.startswith("weight/"))
    if not keys:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 3))
    _lines(axis, {key[7:]: history[key] for key in keys}, "weight", "task weights")
    return _save(plt, figure, path)


def cosine_matrix(history: dict[str, list[float]], path: Path) -> bool:
    """Cosine similarity of the task gradients at the last step."""
    keys = [k for k in history if k.startswith("cosine/")]
    if not keys:
        return False
    tasks: list[str] = []
    for key in keys:
        for t in key.split("/")[1:]:
            if t not in tasks:
                tasks.append(t)
    matrix = np.eye(len(tasks))
    for key in keys:
        a, b = key.split("/")[1:]
        i, j = tasks.index(a), tasks.index(b)
        matrix[i, j] = matrix[j, i] = history[key][-1]
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1.2 * len(tasks) + 2, 1.2 * len(tasks) + 1))
    image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="coolwarm")
    axis.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    axis.set_yticks(range(len(tasks)), tasks)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            axis.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center")
    figure.colorbar(image)
    axis.set_title("gradient cosine (last step)")
    return _save(plt, figure, path)


def save_all(result: dict[str, Any], out: Path) -> list[str]:
    """The plots of the first multi-task run that have data; their names."""
    run = _first_multi(result)
    if run is None:
        return []
    written = []
    for name, plot in (
        ("learning_curves.png", learning_curves),
        ("task_weights.png", task_weights),
        ("gradient_cosine.png", cosine_matrix),
    ):
        if plot(run["history"], out / name):
            written.append(name)
    return written
