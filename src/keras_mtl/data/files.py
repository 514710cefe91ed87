"""Tables from CSV, JSONL and Parquet files, whole or in batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMATS = ("csv", "jsonl", "parquet")


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """The file's format, from `fmt` or its extension."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(
                f"Unknown table format {fmt!r}; expected one of {', '.join(FORMATS)}."
            )
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    known = {
        "csv": "csv",
        "tsv": "csv",
        "jsonl": "jsonl",
        "json": "jsonl",
        "ndjson": "jsonl",
        "parquet": "parquet",
        "pq": "parquet",
    }
    if suffix not in known:
        raise ValueError(
            f"{path}: cannot tell the format from the extension .{suffix}; "
            'say format = "csv", "jsonl" or "parquet".'
        )
    return known[suffix]


def read_table(path: str | Path, fmt: str | None = None) -> Any:
    """The whole file as a pandas DataFrame, with one-sentence errors."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty.")
    fmt = format_of(path, fmt)
    try:
        if fmt == "csv":
            frame = pd.read_csv(
                path,
                sep=None if path.suffix == ".tsv" else ",",
                engine="python" if path.suffix == ".tsv" else "c",
                on_bad_lines="error",
            )
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as error:
        raise ValueError(_undecodable(path, error)) from None
    except pd.errors.ParserError as error:
        raise ValueError(
            f"{path}: malformed {fmt.upper()} ({_first_line(error)})."
        ) from None
    except ValueError as error:
        raise ValueError(
            f"{path}: cannot read it as {fmt.upper()} ({_first_line(error)})."
        ) from None
    except ImportError as error:
        raise ValueError(
            f"{path}: reading {fmt} needs {error.name}: pip install {error.name}."
        ) from None
    if len(frame) == 0:
        raise ValueError(f"{path}: no rows.")
    return frame


def iter_table(
    path: str | Path, batch_rows: int, fmt: str | None = None
) -> Iterator[Any]:
    """The file in frames of `batch_rows` rows, never all in memory."""
    import pandas as pd

    path = Path(path)
    fmt = format_of(path, fmt)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            yield batch.to_pandas()
        return
    try:
        if fmt == "csv":
            yield from pd.read_csv(path, chunksize=batch_rows)
        else:
            yield from pd.read_json(path, lines=True, chunksize=batch_rows)
    except UnicodeDecodeError as error:
        raise ValueError(_undecodable(path, error)) from None


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's text; a file that is not UTF-8 is one sentence."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(_undecodable(path, error)) from None


def _undecodable(path: Path, error: UnicodeDecodeError) -> str:
    """Where the file stops being UTF-8, in one sentence."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as first:
        line = data.count(b"\n", 0, first.start) + 1
        where = f" at line {line} (byte 0x{data[first.start]:02x})"
    return (
        f"{path}: the file is not UTF-8{where}; re-save it as UTF-8 ({error.reason})."
    )


def _first_line(error: Exception) -> str:
    return (
        str(error).strip().splitlines()[0]
        if str(error).strip()
        else type(error).__name__
    )
