"""The commands that use a saved model: `mtl evaluate` and `mtl predict`
(each imports `keras_mtl` when it runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from keras_mtl_cli.usage import EXIT_OK, UsageError


def _saved_model(path: str) -> Any:
    import keras

    if not Path(path).is_file():
        raise UsageError(f"mtl: no model file at {path}.")
    try:
        # Safe mode: a .keras file cannot run arbitrary code when loaded.
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - one sentence, whatever Keras raises
        raise UsageError(
            f"mtl: {path} is not a loadable .keras model ({error})."
        ) from None


def _frame_inputs(model: Any, frame: Any, where: str) -> dict[str, Any]:
    """The model's inputs from a raw frame, as its recipe says."""
    from keras_mtl.data import InputFiller, WordVocabulary
    from keras_mtl.layers import TabularEncoder

    tabular = next(
        (layer for layer in model.layers if isinstance(layer, TabularEncoder)), None
    )
    if tabular is not None:
        encoded = tabular.spec.encode(frame)
        unseen = sum(encoded.unseen.values())
        if unseen:
            print(
                f"{where}: {unseen} categorical value(s) never seen in training went to "
                "the out-of-vocabulary bucket.",
                file=sys.stderr,
            )
        return encoded.inputs
    recipe = getattr(model, "recipe", None) or {}
    tables = recipe.get("inputs") or {t.name: {} for t in model.inputs}
    filler = InputFiller(tables)
    for name, vocab in (recipe.get("vocabularies") or {}).items():
        filler.vocabularies[name] = WordVocabulary(**vocab)
    return filler(frame, where)


def evaluate(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from keras_mtl.data import files, labels_for
    from keras_mtl.evaluation.scoring import task_scores

    model = _saved_model(args.model)
    frame = files.read_table(args.data, args.format)
    x = _frame_inputs(model, frame, args.data)
    preds = model.predict_tasks(x, batch_size=256)
    mapping = (getattr(model, "recipe", None) or {}).get("labels", {})
    scores = {}
    for task in model.tasks:
        column = mapping.get(task.name, task.name)
        if column not in frame.columns:
            raise UsageError(
                f"{args.data}: no label column {column!r} for task '{task.name}'."
            )
        scores[task.name] = task_scores(
            task, labels_for(task, frame[column], args.data), preds[task.name]
        )
    table = Table(title=f"{args.model} on {args.data} ({len(frame)} rows)")
    for column in ("task", "score", "value"):
        table.add_column(column)
    for task, s in scores.items():
        for metric, value in s.items():
            table.add_row(task, metric, f"{value:.4f}")
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    return EXIT_OK


def predict(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from keras_mtl.data import files

    out = Path(args.out)
    if out.suffix not in (".csv", ".jsonl"):
        raise UsageError(
            f"mtl predict: --out must end in .csv or .jsonl, got {out.name}."
        )
    model = _saved_model(args.model)
    frame = files.read_table(args.data, args.format)
    preds = model.predict_tasks(_frame_inputs(model, frame, args.data), batch_size=256)
    columns: dict[str, Any] = {}
    for task in model.tasks:
        p = preds[task.name]
        if task.kind == "multiclass":
            columns[task.name] = p.argmax(axis=-1)
            columns[f"{task.name}_probability"] = p.max(axis=-1)
        elif task.kind == "binary":
            columns[task.name] = (p[:, 0] >= 0.5).astype(np.int64)
            columns[f"{task.name}_probability"] = p[:, 0]
        else:
            for j in range(p.shape[1]):
                suffix = "" if p.shape[1] == 1 else f"_{j}"
                columns[f"{task.name}{suffix}"] = p[:, j]
    table = pd.DataFrame(columns)
    if out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        table.to_json(out, orient="records", lines=True)
    print(f"Wrote {len(table)} predictions for {', '.join(model.task_names)} to {out}.")
    return EXIT_OK
