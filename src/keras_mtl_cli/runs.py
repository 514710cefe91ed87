"""The commands that train: `mtl demo`, `train`, `affinity`, `compare` and
`plot` (each imports `keras_mtl` when it runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from keras_mtl_cli.usage import EXIT_OK, UsageError


def demo(args: argparse.Namespace) -> int:
    from keras_mtl.runs.demo import DemoSettings, run

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


def _join_processes(args: argparse.Namespace) -> int:
    """Joins the other processes of `--processes N`; returns this process's
    index (0 with one process)."""
    given = [
        f
        for f, v in (
            ("--process-id", args.process_id),
            ("--coordinator", args.coordinator),
        )
        if v is not None
    ]
    if args.processes == 1:
        if given:
            raise UsageError(f"mtl train: {given[0]} goes with --processes N (N > 1).")
        return 0
    if len(given) < 2:
        raise UsageError(
            f"mtl train: --processes {args.processes} needs --process-id "
            "(0 .. processes - 1) and --coordinator (process 0's HOST:PORT) "
            "on every process."
        )
    if args.groups == "auto":
        raise UsageError(
            "mtl train: --groups auto measures affinities in one process; run "
            "mtl affinity first and pass its groups to --groups."
        )
    from keras_mtl.runs import processes

    try:
        processes.join(args.coordinator, args.processes, args.process_id)
    except ValueError as error:
        raise UsageError(f"mtl train: {error}") from None
    return args.process_id


def train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from keras_mtl import backend as mtl_backend
    from keras_mtl.runs import results, runner

    index = _join_processes(args)
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
    # Process 0 looks before any process writes; all act on what it saw.
    earlier = mtl_backend.first_process_says(earlier)
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
    if index > 0:
        # Process 0 reports and writes; the others train alongside it.
        verbose, log = 0, lambda m: None
    groups = None
    data = None
    if args.groups:
        from keras_mtl import data as data_module
        from keras_mtl.analysis.grouping import grouping_from_text

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
    if index > 0:
        return EXIT_OK
    from keras_mtl.runs.processes import alone

    with alone():
        files = results.save(result, out)
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


def affinity(args: argparse.Namespace) -> int:
    import json

    from keras_mtl.runs import results, runner

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
            results.jsonable({**measured.to_dict(), "grouping": grouping.to_dict()}),
            indent=2,
        )
    )
    if measured.plot(out / "affinity.png"):
        files.append("affinity.png")
    print(f"Wrote {', '.join(files)} to {out}.")
    return EXIT_OK


def _parse_value(text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def compare(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from keras_mtl.evaluation import delta_m, summarize
    from keras_mtl.evaluation.scoring import HIGHER_IS_BETTER
    from keras_mtl.runs import results as run_results
    from keras_mtl.runs import runner

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
    (out / "compare.json").write_text(
        json.dumps(run_results.jsonable(report), indent=2)
    )
    console.print(f"Wrote compare.json to {out}.", markup=False)
    return EXIT_OK


def plot(args: argparse.Namespace) -> int:
    import json

    from keras_mtl.runs import plots

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
