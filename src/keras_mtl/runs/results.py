"""A run's results: per-model summaries over seeds, Δm% against the
single-task models, and the Markdown and JSON files `mtl train` writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from keras_mtl import data as data_module
from keras_mtl.evaluation import delta_m, summarize
from keras_mtl.evaluation.scoring import HIGHER_IS_BETTER

MULTI = "multi_task"
SINGLE = "single_task"
#: The bag-of-words logistic regression's row in summaries (one fit: no seeds).
YARDSTICK = "bag_of_words"
#: Models of task groups, and the model that serves each task from its group.
GROUP = "group"
GROUPED = "grouped"


def describe_data(data: data_module.Data) -> str:
    parts = [f"{k}: {v}" for k, v in data.info.items() if k != "sources"]
    if "sources" in data.info:
        parts.insert(
            0,
            "sources "
            + ", ".join(
                f"{name} ({', '.join(f'{s} {n}' for s, n in sizes.items())})"
                for name, sizes in data.info["sources"].items()
            ),
        )
    return "Data: " + "; ".join(parts)


def brief(scores: dict[str, Any]) -> str:
    split = "test" if "test" in scores else "val" if "val" in scores else None
    if split is None:
        return "(no validation or test data)"
    return f"({split}) " + ", ".join(
        f"{t} " + " ".join(f"{m} {v:.4f}" for m, v in s.items())
        for t, s in scores[split].items()
    )


def summarize_runs(runs: list[dict], tasks: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    models = [MULTI] + sorted({r["model"] for r in runs if r["model"] != MULTI})
    for model in models:
        mine = [r for r in runs if r["model"] == model]
        if not mine:
            continue
        table: dict[str, Any] = {}
        for split in mine[0]["scores"]:
            for task, scores in mine[0]["scores"][split].items():
                for metric in scores:
                    values = [r["scores"][split][task][metric] for r in mine]
                    table.setdefault(split, {}).setdefault(task, {})[metric] = (
                        summarize(values)
                    )
        out[model] = table
    return out


def delta_m_of_runs(
    runs: list[dict], tasks: list[str], model: str = MULTI
) -> dict[str, Any]:
    out = {}
    multi = [r for r in runs if r["model"] == model]
    for split in multi[0]["scores"]:
        values = []
        for run in multi:
            base = {}
            for task in tasks:
                single = next(
                    r
                    for r in runs
                    if r["model"] == f"{SINGLE}:{task}" and r["seed"] == run["seed"]
                )
                base[task] = single["scores"][split][task]
            scores = {t: run["scores"][split][t] for t in tasks}
            usable = {
                t: {
                    m: v
                    for m, v in s.items()
                    if not math.isnan(v)
                    and not math.isnan(base[t].get(m, float("nan")))
                }
                for t, s in scores.items()
            }
            values.append(delta_m(usable, base, HIGHER_IS_BETTER))
        out[split] = summarize(values)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table: per model, task, split and score,
    mean ± std [95% interval] over seeds."""
    seeds = len(result["seeds"])
    lines = [
        f"Seeds: {seeds}. Values: mean ± standard deviation [95% interval].",
        "",
        "| model | split | task | score | value |",
        "|---|---|---|---|---|",
    ]
    for model, table in result["summary"].items():
        for split, tasks in table.items():
            for task, scores in tasks.items():
                for metric, s in scores.items():
                    lines.append(
                        f"| {model} | {split} | {task} | {metric} | {fmt(s)} |"
                    )
    for key, what in (
        ("delta_m", "multi-task vs single-task"),
        ("delta_m_grouped", "grouped vs single-task"),
    ):
        if key in result:
            lines += ["", f"| Δm% ({what}) | value |", "|---|---|"]
            for split, s in result[key].items():
                lines.append(f"| {split} | {fmt(s, 2)} |")
    if "groups" in result:
        groups = " ".join("{" + ", ".join(g) + "}" for g in result["groups"])
        lines += ["", f"Groups: {groups}."]
    return "\n".join(lines) + "\n"


def fmt(s: dict[str, Any], digits: int = 4) -> str:
    if s["n"] == 0:
        return "n/a"
    lo, hi = s["ci95"]
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def save(result: dict[str, Any], out: Path) -> list[str]:
    """Writes results.json, results.md, model.keras and the plots; returns
    the file names."""
    from keras_mtl.runs import plots

    out.mkdir(parents=True, exist_ok=True)
    written = []
    model = result.get("model")
    plain = {k: v for k, v in result.items() if k != "model"}
    (out / "results.json").write_text(json.dumps(jsonable(plain), indent=2))
    (out / "results.md").write_text(markdown(result))
    written += ["results.json", "results.md"]
    if model is not None:
        model.save(out / "model.keras")
        written.append("model.keras")
    written += plots.save_all(plain, out)
    return written


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
