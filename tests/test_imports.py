"""The import graph: no cycles (function-level imports included), each
module imports on its own, and only public Keras API is used."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("keras_mtl", "keras_mtl_cli")
#: No cycle is left: the backend modules hold primitives and import nothing
#: of the library.
KNOWN_CYCLES: list[set[str]] = []
#: Modules that import private Keras (`keras.src`): none.
PRIVATE_KERAS: set[str] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue  # runs the CLI when imported
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the library that `name` imports, at any depth of its
    code (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                out.add(full if full in MODULES else module)
    if name == "keras_mtl.backend":
        # `module()` imports the running backend's module by name.
        out.update(m for m in MODULES if m.startswith("keras_mtl.backend."))
    return {m for m in out if m in MODULES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_on_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert len(graph) > 100
    assert _cycles(graph) == KNOWN_CYCLES


def test_backend_modules_hold_only_primitives():
    """Each backend module imports nothing of the library: the train step
    and everything else built on the primitives live outside them."""
    backends = [m for m in MODULES if m.startswith("keras_mtl.backend.")]
    assert sorted(backends) == [
        "keras_mtl.backend.jax",
        "keras_mtl.backend.tensorflow",
        "keras_mtl.backend.torch",
    ]
    for name in backends:
        assert _imports(name, MODULES[name]) == set(), name


def test_only_public_keras_api():
    private = {
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (m or "").startswith("keras.src")
            for m in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
            )
        )
    }
    assert private == PRIVATE_KERAS


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "jax") != "jax",
    reason="imports do not depend on the backend: checked once, on JAX",
)
def test_each_module_imports_on_its_own():
    """A fresh interpreter imports Keras once, then forks one child per
    module: each child starts with no module of the library loaded and
    imports just that one."""
    script = textwrap.dedent(
        """
        import os, sys, traceback
        import keras  # noqa: F401  (shared by every child: the slow part)
        failures = []
        for name in sys.argv[1:]:
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                try:
                    assert not any(m.startswith("keras_mtl") for m in sys.modules)
                    __import__(name)
                    code = 0
                except BaseException:
                    os.write(write, traceback.format_exc().encode()[-2000:])
                    code = 1
                os._exit(code)
            os.close(write)
            with os.fdopen(read, "rb") as pipe:
                message = pipe.read().decode(errors="replace")
            _, status = os.waitpid(pid, 0)
            if status:
                failures.append(f"{name}: {message}")
        print("\\n".join(failures))
        sys.exit(1 if failures else 0)
        """
    )
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", script, *sorted(MODULES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
