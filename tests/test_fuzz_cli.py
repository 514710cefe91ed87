"""Generated malformed configs and data files thrown at `mtl train`: every
one ends in a clean exit (0 for what is valid after all, 2 with one sentence
otherwise), never a traceback and never exit 1 (an unexpected error)."""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_mtl.cli import main

pytestmark = pytest.mark.slow

WORDS = ["good", "bad", "fine", "awful", "great", "poor"]


def _csv(rows: int = 24) -> str:
    lines = ["text,positive,kind"]
    for i in range(rows):
        lines.append(f"{WORDS[i % 6]} {WORDS[(i * 5) % 6]},{i % 2},{i % 3}")
    return "\n".join(lines) + "\n"


def _config(train: Path) -> dict:
    return {
        "inputs": {"text": {"shape": [16], "encoding": "bytes", "length": 16}},
        "encoder": {
            "name": "conv1d",
            "filters": 4,
            "kernel_size": 3,
            "num_layers": 1,
            "symbols": "embedding",
            "embedding_dim": 4,
        },
        "tasks": [
            {"name": "positive"},
            {"name": "kind", "kind": "multiclass", "num_classes": 3},
        ],
        "compile": {"optimizer": "adam"},
        "training": {"epochs": 1, "batch_size": 8},
        "data": {"source": "files", "train": str(train)},
    }


ODD_VALUES = st.one_of(
    st.integers(-3, 20),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.booleans(),
    st.lists(st.integers(-2, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(0, 3), max_size=2),
)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


@st.composite
def configs(draw, train: Path) -> str:
    """A config text with one to three mutations (or TOML garbage)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))
    data = _config(train)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "value", "rename", "add"]))
        last = path[-1]
        if action == "delete" and isinstance(parent, dict):
            del parent[last]
        elif action == "value":
            parent[last] = draw(ODD_VALUES)
        elif action == "rename" and isinstance(parent, dict):
            parent[last + draw(st.sampled_from(["s", "_x", "e"]))] = parent.pop(last)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "units", "seed", "kind"]))] = draw(
                ODD_VALUES
            )
    try:
        return tomli_w.dumps(copy.deepcopy(data))
    except (TypeError, ValueError):
        return "[inputs\n"


@st.composite
def tables(draw) -> bytes:
    """The training CSV with one to three mutations."""
    data = _csv().encode()
    for _ in range(draw(st.integers(1, 3))):
        action = draw(
            st.sampled_from(["truncate", "insert", "cell", "column", "empty", "bytes"])
        )
        lines = data.split(b"\n")
        if action == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif action == "insert":
            at = draw(st.integers(0, len(data)))
            data = (
                data[:at]
                + draw(st.sampled_from([b",", b'"', b"\n", b",,"]))
                + data[at:]
            )
        elif action == "cell" and len(lines) > 1:
            row = draw(st.integers(1, len(lines) - 1))
            cells = lines[row].split(b",")
            col = draw(st.integers(0, len(cells) - 1))
            cells[col] = draw(
                st.sampled_from([b"", b"nan", b"7", b"-1", b"yes", b"1e400", b"0.5"])
            )
            lines[row] = b",".join(cells)
            data = b"\n".join(lines)
        elif action == "column":
            col = draw(st.integers(0, 2))
            data = b"\n".join(
                b",".join(c for i, c in enumerate(line.split(b",")) if i != col)
                for line in lines
            )
        elif action == "empty":
            data = b""
        else:
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    return data


def _run(config_text: str, table: bytes, root: Path) -> None:
    (root / "train.csv").write_bytes(table)
    (root / "c.toml").write_text(config_text)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        # One epoch at most: what is fuzzed is the input, not the training.
        code = main(
            ["train", str(root / "c.toml"), "--out", str(root / "o"), "--epochs", "1"]
        )
    message = err.getvalue().strip()
    assert code in (0, 2), f"exit {code}: {message}"
    if code == 2:
        assert message.startswith("mtl"), message
        assert "\n" not in message and "Traceback" not in message, message


ROOT = Path(tempfile.mkdtemp(prefix="mtl-fuzz-"))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_malformed_configs_exit_cleanly(data):
    with tempfile.TemporaryDirectory(dir=ROOT) as folder:
        root = Path(folder)
        _run(data.draw(configs(root / "train.csv")), _csv().encode(), root)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tables())
def test_malformed_files_exit_cleanly(table):
    with tempfile.TemporaryDirectory(dir=ROOT) as folder:
        root = Path(folder)
        config = tomli_w.dumps(_config(root / "train.csv"))
        _run(config, table, root)
