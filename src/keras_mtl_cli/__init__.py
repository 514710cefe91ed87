"""The `mtl` command line tool (its code imports `keras_mtl` only inside commands).

Commands: `demo`, `train CONFIG`, `affinity CONFIG`, `evaluate MODEL DATA`,
`predict MODEL DATA`, `compare CONFIG --vary KEY=V1,V2`, `plot RESULTS`,
`methods`. Exit codes: 0
done, 1 failed run, 2 bad usage, config or data (one sentence on stderr,
never a traceback; `MTL_TRACEBACK=1` shows one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments, config or data: reported in one sentence, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}.")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mtl", description="Multi-task learning for Keras 3.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = commands.add_parser(
        "demo",
        help="train the seed's two models and better ones on real tweet pairs",
        description="Trains Case 1 (concatenate), Case 2 (per input), a pair-fusion model "
        "and the same with each tweet's sentiment as auxiliary tasks on real tweet "
        "pairs, and a bag-of-words yardstick; prints per-task scores, dependency maps "
        "and conclusions.",
    )
    demo.add_argument(
        "--out", default="demo-out", help="output folder (default demo-out)"
    )
    demo.add_argument(
        "--quick", action="store_true", help="a small run for a first look"
    )
    demo.add_argument(
        "--epochs",
        type=_positive,
        help="training epochs per model (default: early stopping on the validation "
        "loss; 1 for the LSTM)",
    )
    demo.add_argument(
        "--encoder",
        choices=["ngrams", "lstm"],
        default="ngrams",
        help="the shared text encoder: hashed n-grams (default) or the seed's LSTM(64)",
    )
    demo.add_argument("--train-pairs", type=_positive, help="training pairs")
    demo.add_argument("--batch-size", type=_positive, help="batch size")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and weights")

    train = commands.add_parser(
        "train",
        help="train the model a TOML config describes",
        description="Trains a config's model over seeds, scores it "
        "on validation and test data, and writes the model, results "
        "and plots.",
    )
    train.add_argument("config", help="the TOML config")
    train.add_argument(
        "--out", default="mtl-out", help="output folder (default mtl-out)"
    )
    train.add_argument(
        "--seeds", type=_positive, help="number of seeds (default: the config's)"
    )
    train.add_argument(
        "--baselines",
        action="store_true",
        help="also train single-task baselines and report Δm%%",
    )
    train.add_argument("--epochs", type=_positive, help="override [training] epochs")
    train.add_argument(
        "--groups",
        help='also train task groups, each as one model: "a,b;c", or "auto" for '
        "the groups `mtl affinity` recommends (needs --baselines for Δm%%)",
    )
    train.add_argument(
        "--budget", type=_positive, help="with --groups auto: at most this many groups"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose checkpoints are in OUT/checkpoints",
    )
    train.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="write no checkpoints (by default every epoch and every "
        "[training] checkpoint_minutes, 5, within one, to OUT/checkpoints)",
    )

    affinity = commands.add_parser(
        "affinity",
        help="measure which tasks help each other and recommend task groups",
        description="Trains the config's model once (summed losses), measures the "
        "lookahead affinity and gradient cosine of every pair of tasks every few "
        "steps, prints both matrices and the recommended groups, and writes "
        "affinity.png and affinity.json.",
    )
    affinity.add_argument("config", help="the TOML config")
    affinity.add_argument(
        "--out", default="mtl-affinity", help="output folder (default mtl-affinity)"
    )
    affinity.add_argument("--epochs", type=_positive, help="override [training] epochs")
    affinity.add_argument(
        "--every", type=_positive, default=10, help="steps between measurements"
    )
    affinity.add_argument(
        "--budget",
        type=_positive,
        help="at most this many groups (default: half the tasks, at least 2)",
    )

    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a data file"
    )
    evaluate.add_argument("model", help="a .keras file saved by mtl train")
    evaluate.add_argument(
        "data", help="a CSV, JSONL or Parquet file with the model's columns"
    )
    evaluate.add_argument("--format", choices=["csv", "jsonl", "parquet"])
    evaluate.add_argument("--json", help="also write the scores as JSON to this file")

    predict = commands.add_parser("predict", help="write a saved model's predictions")
    predict.add_argument("model", help="a .keras file saved by mtl train")
    predict.add_argument(
        "data", help="a CSV, JSONL or Parquet file with the model's inputs"
    )
    predict.add_argument(
        "--out", required=True, help="predictions file (.csv or .jsonl)"
    )
    predict.add_argument("--format", choices=["csv", "jsonl", "parquet"])

    compare = commands.add_parser(
        "compare", help="compare variants of a config over seeds"
    )
    compare.add_argument("config", help="the TOML config")
    compare.add_argument(
        "--vary",
        required=True,
        help="KEY=V1,V2,... e.g. fusion=concatenate,per_input or balancer=ew,uw,pcgrad",
    )
    compare.add_argument("--seeds", type=_positive, default=1)
    compare.add_argument(
        "--baselines",
        action="store_true",
        help="Δm%% against single-task baselines (default: against the first variant)",
    )
    compare.add_argument("--epochs", type=_positive, help="override [training] epochs")
    compare.add_argument("--out", default="mtl-compare", help="output folder")

    plot = commands.add_parser("plot", help="draw the plots of a results folder again")
    plot.add_argument("results", help="a folder written by mtl train")

    commands.add_parser(
        "methods", help="list architectures, fusions, encoders and balancers"
    )
    return parser


# ---------------------------------------------------------------- commands


def _demo(args: argparse.Namespace) -> int:
    from keras_mtl.demo import DemoSettings, run

    settings = (
        DemoSettings.quick(args.seed, args.encoder)
        if args.quick
        else DemoSettings(seed=args.seed, encoder=args.encoder)
    )
    overrides = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("train_pairs", args.train_pairs),
            ("batch_size", args.batch_size),
        )
        if v is not None
    }
    settings = DemoSettings(**{**settings.__dict__, **overrides})
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"mtl demo: --out {out} is a file, expected a folder.")
    run(settings, out)
    return EXIT_OK


def _load_config(path: str, epochs: int | None) -> Any:
    from keras_mtl.config import Config

    config = Config.load(path)
    if epochs is not None:
        config = config.with_value("training.epochs", epochs)
    return config


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from keras_mtl import runner

    config = _load_config(args.config, args.epochs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"mtl train: --out {out} is a file, expected a folder.")
    seeds = args.seeds or config.evaluation().get("seeds", 1)
    baselines = args.baselines or config.evaluation().get("baselines", False)
    checkpoints = out / "checkpoints"
    if args.no_checkpoints and args.resume:
        raise UsageError(
            "mtl train: --resume needs checkpoints; drop --no-checkpoints."
        )
    earlier = checkpoints.is_dir() and any(checkpoints.iterdir())
    if args.no_checkpoints:
        earlier = False
    if earlier and not args.resume:
        raise UsageError(
            f"mtl train: {checkpoints} holds the checkpoints of an earlier run; "
            "pass --resume to continue it, or choose another --out."
        )
    if args.resume and not earlier:
        raise UsageError(
            f"mtl train: --resume, but {checkpoints} holds no checkpoint to "
            "resume from."
        )
    console = Console()
    verbose = 1 if sys.stdout.isatty() else 2
    log = lambda m: console.print(m, markup=False)  # noqa: E731
    groups = None
    data = None
    if args.groups:
        from keras_mtl import data as data_module
        from keras_mtl.analysis.affinity import grouping_from_text

        names = [t["name"] for t in config.data["tasks"]]
        data = data_module.load(config)
        if args.groups == "auto":
            measured = runner.affinity(config, verbose=verbose, log=log, data=data)
            grouping = measured.group(args.budget)
            console.print(measured.format(), markup=False)
            log(f"Recommended groups: {grouping.format()}")
            groups = grouping.groups
        else:
            groups = grouping_from_text(args.groups, names)
    elif args.budget:
        raise UsageError("mtl train: --budget goes with --groups auto.")
    result = runner.run(
        config,
        seeds=seeds,
        baselines=baselines,
        verbose=verbose,
        log=log,
        checkpoints=None if args.no_checkpoints else checkpoints,
        groups=groups,
        data=data,
    )
    files = runner.save(result, out)
    _print_summary(console, result)
    console.print(f"Wrote {', '.join(files)} to {out}.", markup=False)
    return EXIT_OK


def _print_summary(console: Any, result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"Scores over {len(result['seeds'])} seed(s): mean ± std [95% CI]"
    )
    for column in ("model", "split", "task", "score", "value"):
        table.add_column(column)
    for model, splits in result["summary"].items():
        for split, tasks in splits.items():
            for task, scores in tasks.items():
                for metric, s in scores.items():
                    table.add_row(model, split, task, metric, _cell(s))
    console.print(table)
    for split, s in result.get("delta_m", {}).items():
        console.print(f"Δm% ({split}): {_cell(s, 2)}", markup=False)
    for split, s in result.get("delta_m_grouped", {}).items():
        console.print(f"Δm% of the groups ({split}): {_cell(s, 2)}", markup=False)


def _cell(s: dict[str, Any], digits: int = 4) -> str:
    if not s.get("n"):
        return "n/a"
    lo, hi = s["ci95"]
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _affinity(args: argparse.Namespace) -> int:
    import json

    from keras_mtl import runner

    config = _load_config(args.config, args.epochs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"mtl affinity: --out {out} is a file, expected a folder.")
    verbose = 1 if sys.stdout.isatty() else 2
    measured = runner.affinity(config, every=args.every, verbose=verbose)
    grouping = measured.group(args.budget)
    print(measured.format())
    print(f"Recommended groups: {grouping.format()}")
    out.mkdir(parents=True, exist_ok=True)
    files = ["affinity.json"]
    (out / "affinity.json").write_text(
        json.dumps(
            runner._jsonable({**measured.to_dict(), "grouping": grouping.to_dict()}),
            indent=2,
        )
    )
    if measured.plot(out / "affinity.png"):
        files.append("affinity.png")
    print(f"Wrote {', '.join(files)} to {out}.")
    return EXIT_OK


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


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from keras_mtl.data import files, labels_for
    from keras_mtl.scoring import task_scores

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


def _predict(args: argparse.Namespace) -> int:
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


def _parse_value(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _compare(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from keras_mtl import runner
    from keras_mtl.evaluation import delta_m, summarize
    from keras_mtl.scoring import HIGHER_IS_BETTER

    if "=" not in args.vary:
        raise UsageError(f"mtl compare: --vary must be KEY=V1,V2, got {args.vary!r}.")
    key, values = args.vary.split("=", 1)
    variants = [v for v in values.split(",") if v]
    if len(variants) < 2:
        raise UsageError(
            f"mtl compare: --vary needs at least two values, got {values!r}."
        )
    base = _load_config(args.config, args.epochs)
    configs = [(v, base.with_value(key, _parse_value(v))) for v in variants]
    console = Console()
    results = {}
    for value, config in configs:
        console.print(f"== {key} = {value}", markup=False)
        results[value] = runner.run(
            config,
            seeds=args.seeds,
            baselines=args.baselines,
            log=lambda m: console.print(m, markup=False),
        )
    split = "test" if "test" in results[variants[0]]["summary"]["multi_task"] else "val"
    table = Table(title=f"{key}: {split} scores over {args.seeds} seed(s), mean ± std")
    table.add_column(key)
    tasks = results[variants[0]]["summary"]["multi_task"][split]
    metrics = [(t, m) for t, s in tasks.items() for m in s]
    for task, metric in metrics:
        table.add_column(f"{task} {metric}")
    reference = "single-task" if args.baselines else variants[0]
    table.add_column(f"Δm% vs {reference}")
    report: dict[str, Any] = {"key": key, "split": split, "variants": {}}
    for value in variants:
        summary = results[value]["summary"]["multi_task"][split]
        if args.baselines:
            dm = results[value]["delta_m"][split]
        else:
            ref = results[variants[0]]
            values = []
            for run, ref_run in zip(
                [r for r in results[value]["runs"] if r["model"] == "multi_task"],
                [r for r in ref["runs"] if r["model"] == "multi_task"],
                strict=True,
            ):
                values.append(
                    delta_m(
                        run["scores"][split], ref_run["scores"][split], HIGHER_IS_BETTER
                    )
                )
            dm = summarize(values)
        table.add_row(
            value,
            *[
                _cell(summary[t][m])[: _cell(summary[t][m]).find(" [")]
                for t, m in metrics
            ],
            _cell(dm, 2),
        )
        report["variants"][value] = {"summary": summary, "delta_m": dm}
    console.print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(runner._jsonable(report), indent=2))
    console.print(f"Wrote compare.json to {out}.", markup=False)
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    import json

    from keras_mtl import plots

    folder = Path(args.results)
    path = folder / "results.json"
    if not path.is_file():
        raise UsageError(
            f"mtl plot: {folder} has no results.json (written by mtl train)."
        )
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UsageError(f"mtl plot: {path} is not valid JSON.") from None
    written = plots.save_all(result, folder)
    print(f"Wrote {', '.join(written) or 'no plot (no history)'} to {folder}.")
    return EXIT_OK


def _methods(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from keras_mtl_cli.catalog import METHODS

    table = Table(title="keras-mtl methods")
    for column in ("kind", "name", "what it does"):
        table.add_column(column)
    for kind, name, text in METHODS:
        # Text, not markup: "[h_a, h_b]" is a description, not a style.
        table.add_row(kind, name, Text(text))
    Console(width=140).print(table)
    return EXIT_OK


COMMANDS = {
    "demo": _demo,
    "train": _train,
    "affinity": _affinity,
    "evaluate": _evaluate,
    "predict": _predict,
    "compare": _compare,
    "plot": _plot,
    "methods": _methods,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `mtl`; returns 0 (done), 1 (failed run) or 2 (bad usage)."""
    # Before any backend is imported: TensorFlow's C++ start-up lines stay
    # quiet unless the user sets the variable.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = None
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            raise UsageError(
                "mtl: name a command: mtl demo, train, affinity, evaluate, "
                "predict, compare, plot or methods (see mtl --help)."
            )
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mtl: interrupted.", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # noqa: BLE001 - the CLI reports, never traces
        if os.environ.get("MTL_TRACEBACK"):
            raise
        from keras_mtl.config import ConfigError

        command = getattr(args, "command", None) or ""
        if isinstance(error, ConfigError | ValueError | FileNotFoundError):
            print(f"mtl {command}: {_one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        print(
            f"mtl {command}: {type(error).__name__}: {_one_line(error)}",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) < 600 else text[:597] + "..."


if __name__ == "__main__":
    sys.exit(main())
